import type { ClickHouseClient } from '@clickhouse/client';
import { quoteString } from '../schemas/identifiers.js';
import { CONTROL_CHARS, NAME_FORBIDDEN_CHARS, isWord, quotedName, tokenize, type Token } from '../schemas/sql-tokens.js';

/**
 * The one place that decides which user-written SQL may run: the read-only
 * queries of `POST /v1/sql`, the expressions of a data source spec
 * (partition, sorting and primary keys, TTL, column defaults) and its column
 * types.
 *
 * Both are allow-lists over ClickHouse's own parse of the text, never patterns
 * over the text itself:
 *
 * 1. `formatQuerySingleLine({q:String})` parses the text as data (nothing is
 *    executed) and returns its canonical form; a syntax error or a second
 *    statement ends here. Everything below, and what finally runs, is that
 *    canonical text.
 * 2. The canonical text is read token by token (schemas/sql-tokens.ts, with
 *    ClickHouse's quoting rules): no control character outside string
 *    literals, no name that holds one, no SETTINGS, INTO OUTFILE or FORMAT,
 *    and every APPLY names one allowed function (the printed tree omits it).
 * 3. `EXPLAIN AST SELECT * FROM (<canonical>)` gives the tree. Wrapping the
 *    statement in a subquery is what makes this step safe: `INTO OUTFILE` and
 *    `FORMAT` are only valid at the top level, so a statement carrying them is
 *    a syntax error here instead of an EXPLAIN whose output ClickHouse would
 *    write to a file. The tree is read as one node per line only because step
 *    2 proved no name can break a line, and each node must have exactly the
 *    children its line announces.
 * 4. Every node kind, every function and every table in the tree must be on
 *    the allow-lists below.
 *
 * Functions are allowed by ClickHouse's own catalogue (`system.functions`,
 * by category, an allow-list), so new pure functions of a new ClickHouse
 * release are allowed without a change here, while categories that reach
 * outside the data (files, settings, dictionaries, the host) never are.
 */

export class SqlGuardError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}

/** Categories of `system.functions` an expression may call: pure scalar functions. */
export const EXPRESSION_CATEGORIES = [
  'Arithmetic', 'Comparison', 'Logical', 'Conditional', 'Type Conversion', 'Dates and Times', 'String', 'String Search',
  'String Replacement', 'String Splitting', 'Rounding', 'Mathematical', 'Hash', 'Tuple', 'Arrays', 'Map', 'JSON', 'Bit',
  'Encoding', 'UUID', 'IP Address', 'URL', 'Null', 'Random Number', 'Geo', 'Distance', 'Financial',
] as const;

/**
 * Categories a read-only query may call besides those: aggregates and other
 * pure computations. An allow-list, so a category a new ClickHouse release
 * adds is refused until someone reads what it does.
 */
export const QUERY_CATEGORIES = [...EXPRESSION_CATEGORIES, 'Aggregate Functions', 'Bitmap', 'Geo Polygon', 'Time Window', 'Time Series', 'NumericIndexedVector', 'QBit'] as const;

/**
 * Pure functions ClickHouse files under "Other", allowed in read-only queries.
 * Everything else there (file, getSetting, hostName, sleep, joinGet,
 * hasColumnInTable, filesystem*, ...) reaches outside the query's data.
 */
export const QUERY_EXTRA_FUNCTIONS = [
  'formatReadableSize', 'formatReadableDecimalSize', 'formatReadableQuantity', 'formatReadableTimeDelta', 'parseReadableSize',
  'parseReadableSizeOrNull', 'parseReadableSizeOrZero', 'parseTimeDelta', 'bar', 'transform', 'toTypeName', 'toColumnTypeName',
  'ignore', 'identity', 'materialize', 'isConstant', 'runningDifference', 'runningDifferenceStartingWithFirstValue', 'neighbor',
  'rowNumberInBlock', 'rowNumberInAllBlocks', 'blockSize', 'defaultValueOfTypeName', 'defaultValueOfArgumentType', 'variantElement',
  'variantType', 'countDigits', 'isDecimalOverflow', 'getSubcolumn', 'visibleWidth', 'finalizeAggregation', 'initializeAggregation',
  'runningAccumulate', 'MACNumToString', 'MACStringToNum', 'MACStringToOUI', 'byteSize', 'currentDatabase',
] as const;

/**
 * Functions whose one call costs more than linear time in its input, or
 * more time than the memory it holds (edit distances are O(n*m) over strings
 * of up to 64 KiB; fuzzy matching compiles automata per pattern; `arrayFold`
 * runs its lambda once per element, so a fold that rebuilds its accumulator
 * is quadratic in a few MiB; `hasSubstr` and `arrayReduceInRanges` compare
 * or aggregate every pair): ClickHouse checks time limits and cancellation
 * between blocks, never inside one call, so a single row of them would hold
 * a core for minutes whatever the limits say. Everything else evaluates
 * column by column, so its cost is bounded by the memory cap.
 */
export const UNBOUNDED_CPU_FUNCTIONS = [
  'editDistance', 'editDistanceUTF8', 'levenshteinDistance', 'levenshteinDistanceUTF8', 'damerauLevenshteinDistance',
  'jaroSimilarity', 'jaroWinklerSimilarity', 'arrayLevenshteinDistance', 'arrayLevenshteinDistanceWeighted', 'arraySimilarity',
  'multiFuzzyMatchAny', 'multiFuzzyMatchAnyIndex', 'multiFuzzyMatchAllIndices', 'arrayFold', 'hasSubstr', 'arrayReduceInRanges',
] as const;

/** Functions the parser itself produces from syntax (`x -> y`) that the catalogue does not list. */
const SYNTAX_FUNCTIONS = ['lambda'];

/** Suffixes ClickHouse lets any aggregate function take (sumIf, uniqMerge, avgOrNullIf, ...). */
const AGGREGATE_COMBINATORS = ['If', 'Array', 'Map', 'State', 'SimpleState', 'Merge', 'MergeState', 'ForEach', 'Distinct', 'OrDefault', 'OrNull', 'Resample', 'ArgMin', 'ArgMax'];

/** System tables a read-only query may read: the catalogue of what exists, nothing about the host or other users. */
export const ALLOWED_SYSTEM_TABLES = ['tables', 'columns', 'parts', 'databases', 'one', 'functions', 'data_type_families', 'table_functions'] as const;

/** AST node kinds a reading query is made of. Anything else (QueryParameter, Set, ...) is refused by name. */
const QUERY_NODES = new Set([
  'SelectWithUnionQuery', 'SelectIntersectExceptQuery', 'SelectQuery', 'ExpressionList', 'TablesInSelectQuery', 'TablesInSelectQueryElement',
  'TableExpression', 'TableJoin', 'ArrayJoin', 'Subquery', 'TableIdentifier', 'Identifier', 'Literal', 'Function', 'Asterisk',
  'QualifiedAsterisk', 'ColumnsRegexpMatcher', 'ColumnsListMatcher', 'QualifiedColumnsRegexpMatcher', 'QualifiedColumnsListMatcher',
  'ColumnsTransformerList', 'ColumnsApplyTransformer', 'ColumnsExceptTransformer', 'ColumnsReplaceTransformer',
  'ColumnsReplaceTransformer::Replacement', 'OrderByElement', 'WithElement', 'WindowDefinition', 'WindowListElement', 'SampleRatio',
  'InterpolateElement',
]);

/** AST node kinds of a table expression: functions of columns and literals, nothing else. */
const EXPRESSION_NODES = new Set(['ExpressionList', 'Function', 'Identifier', 'Literal', 'OrderByElement']);

export interface AstNode {
  kind: string;
  /** Function or table name, as the parser resolved it (backticks gone). */
  name: string;
  children: AstNode[];
}

export interface GuardScope {
  /** Databases whose tables a query may read (the connector's own). */
  databases: string[];
  /** The database an unqualified table name resolves to. */
  defaultDatabase: string;
}

interface FunctionCatalogue {
  query: Set<string>;
  expression: Set<string>;
  caseInsensitive: Map<string, string>;
  aggregates: Set<string>;
}

const catalogues = new WeakMap<ClickHouseClient, Promise<FunctionCatalogue>>();

async function catalogue(client: ClickHouseClient): Promise<FunctionCatalogue> {
  let c = catalogues.get(client);
  if (!c) {
    c = loadCatalogue(client);
    catalogues.set(client, c);
    c.catch(() => catalogues.delete(client));
  }
  return c;
}

async function loadCatalogue(client: ClickHouseClient): Promise<FunctionCatalogue> {
  const rs = await client.query({
    query: 'SELECT name, alias_to, is_aggregate, case_insensitive, categories FROM system.functions',
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ name: string; alias_to: string; is_aggregate: number; case_insensitive: number; categories: string }>();
  const byName = new Map(rows.map((r) => [r.name, r]));
  const query = new Set<string>(SYNTAX_FUNCTIONS);
  const expression = new Set<string>(SYNTAX_FUNCTIONS);
  const aggregates = new Set<string>();
  const caseInsensitive = new Map<string, string>();
  const exprCategories = new Set<string>(EXPRESSION_CATEGORIES);
  const queryCategories = new Set<string>(QUERY_CATEGORIES);
  const extras = new Set<string>(QUERY_EXTRA_FUNCTIONS);
  const unbounded = new Set<string>(UNBOUNDED_CPU_FUNCTIONS);
  for (const r of rows) {
    // An alias (e.g. DATE_TRUNC -> dateTrunc) is judged as what it stands for.
    const target = r.alias_to ? byName.get(r.alias_to) ?? r : r;
    const category = target.categories;
    const aggregate = Boolean(Number(target.is_aggregate));
    if (aggregate) aggregates.add(r.name);
    if (unbounded.has(target.name) || unbounded.has(r.name)) continue;
    if (queryCategories.has(category) || extras.has(target.name)) query.add(r.name);
    if (exprCategories.has(category) && !aggregate) expression.add(r.name);
    if (Number(r.case_insensitive)) caseInsensitive.set(r.name.toLowerCase(), r.name);
  }
  return { query, expression, caseInsensitive, aggregates };
}

/** The catalogue name a call resolves to (case-insensitive functions in any case, aggregates with combinators), or null. */
function resolveFunction(cat: FunctionCatalogue, name: string, allowed: Set<string>, aggregatesAllowed: boolean): string | null {
  const exact = allowed.has(name) ? name : cat.caseInsensitive.get(name.toLowerCase());
  if (exact && allowed.has(exact)) return exact;
  if (!aggregatesAllowed) return null;
  // sumIf, uniqArrayIf, avgOrNull...: strip combinators until an allowed aggregate remains.
  let base = name;
  for (let guard = 0; guard < 4; guard++) {
    const suffix = AGGREGATE_COMBINATORS.find((s) => base.endsWith(s) && base.length > s.length);
    if (!suffix) break;
    base = base.slice(0, -suffix.length);
    const found = cat.aggregates.has(base) ? base : cat.caseInsensitive.get(base.toLowerCase());
    if (found && cat.aggregates.has(found) && allowed.has(found)) return found;
  }
  return null;
}

/**
 * The tree of `EXPLAIN AST` output. ClickHouse prints one node per line,
 * indented by depth, with `(children N)` after every node that has children.
 * The text is only trusted as a tree because nothing in it can break a line:
 * every name in the statement was checked for control characters first
 * (checkTokens), the whole output is checked again here, and every node must
 * have exactly the children its line announces, or the query is refused.
 */
export function parseExplainAst(text: string): AstNode {
  if (CONTROL_CHARS.test(text.replace(/\n/g, ''))) throw new Error('control character in EXPLAIN output');
  const root: AstNode = { kind: '(root)', name: '', children: [] };
  const announced = new Map<AstNode, number>();
  const stack: Array<{ depth: number; node: AstNode }> = [{ depth: -1, node: root }];
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    const count = / \(children (\d+)\)$/.exec(raw);
    const line = count ? raw.slice(0, count.index) : raw;
    const m = /^( *)([A-Za-z][A-Za-z0-9_]*(?:::[A-Za-z]+)?)(?: (.*))?$/.exec(line);
    if (!m) throw new Error(`unexpected EXPLAIN line ${JSON.stringify(raw)}`);
    const depth = m[1]!.length;
    const body = (m[3] ?? '').replace(/ ?\(alias .*\)$/, '');
    const node: AstNode = { kind: m[2]!, name: body, children: [] };
    if (count) announced.set(node, Number(count[1]));
    while (stack.length > 1 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const parent = stack[stack.length - 1]!;
    if (depth !== parent.depth + 1) throw new Error(`EXPLAIN line indented out of its tree: ${JSON.stringify(raw)}`);
    parent.node.children.push(node);
    stack.push({ depth, node });
  }
  const verify = (n: AstNode) => {
    if (n !== root && n.children.length !== (announced.get(n) ?? 0)) throw new Error(`EXPLAIN node ${n.kind} does not have the children it announces`);
    n.children.forEach(verify);
  };
  verify(root);
  return root;
}

/**
 * EXPLAIN output, one node per line. A server answers TSV; chDB answers CSV
 * whatever format is asked, so a quoted line is unquoted.
 */
async function explain(client: ClickHouseClient, query: string): Promise<string> {
  const rs = await client.query({ query, format: 'TabSeparated' });
  return (await rs.text())
    .split('\n')
    .map((line) => (line.length >= 2 && line.startsWith('"') && line.endsWith('"') ? line.slice(1, -1).replace(/""/g, '"') : line))
    .join('\n');
}

/** ClickHouse's one-line reason for a rejection, without the echo of our own wrapper query. */
function parserReason(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  return message
    .replace(/^Code: \d+\. DB::Exception: /, '')
    .replace(/:? In scope [\s\S]*$/, '')
    .replace(/\s*\(version [^)]*\)\s*$/, '')
    .split('\n')[0]!
    .slice(0, 300);
}

/** Canonical single-line text of one statement, parsed by ClickHouse without running it. */
async function canonical(client: ClickHouseClient, sql: string, field: string): Promise<string> {
  try {
    const rs = await client.query({ query: 'SELECT formatQuerySingleLine({q:String}) AS f', query_params: { q: sql }, format: 'JSONEachRow' });
    const [row] = await rs.json<{ f: string }>();
    return row!.f;
  } catch (err) {
    throw new SqlGuardError(field, `not valid ClickHouse SQL: ${parserReason(err)}`);
  }
}

/**
 * The AST of a canonical SELECT, obtained inside a subquery (see the module
 * comment). `tokens` are the canonical text's; strings holding escapes are
 * blanked first (withPlainStrings), and ClickHouse must format the blanked
 * text back to itself, which proves its lexer split it where ours did.
 */
async function selectAst(client: ClickHouseClient, canon: string, tokens: Token[], field: string): Promise<AstNode> {
  const canonicalSelect = withPlainStrings(canon, tokens);
  if (canonicalSelect !== canon && (await canonical(client, canonicalSelect, field)) !== canonicalSelect) {
    throw new SqlGuardError(field, 'not a query the guard can prove read-only (its string literals do not read the same to ClickHouse)');
  }
  let explained: string;
  try {
    explained = await explain(client, `EXPLAIN AST SELECT * FROM (\n${canonicalSelect}\n)`);
  } catch (err) {
    throw new SqlGuardError(field, `not a reading query: ${parserReason(err)}`);
  }
  let tree: AstNode;
  try {
    tree = parseExplainAst(explained);
  } catch {
    throw new SqlGuardError(field, 'not a query the guard can prove read-only (its parse tree is ambiguous)');
  }
  // (root) > SelectWithUnionQuery > ExpressionList > SelectQuery > [Asterisk list, TablesInSelectQuery > Element > TableExpression > Subquery > user's query]
  const outer = tree.children.length === 1 ? tree.children[0] : undefined;
  const select = outer?.kind === 'SelectWithUnionQuery' && outer.children[0]?.children.length === 1 ? outer.children[0].children[0] : undefined;
  const from = select?.kind === 'SelectQuery' && select.children.length === 2 ? select.children[1] : undefined;
  const element = from?.kind === 'TablesInSelectQuery' && from.children.length === 1 ? from.children[0] : undefined;
  const subquery = element?.children[0]?.kind === 'TableExpression' && element.children[0].children.length === 1 ? element.children[0].children[0] : undefined;
  const inner = subquery?.kind === 'Subquery' && subquery.children.length === 1 ? subquery.children[0] : undefined;
  if (!inner) throw new SqlGuardError(field, 'not a reading query');
  return inner;
}

/**
 * Checks on ClickHouse's canonical text, token by token (schemas/sql-tokens.ts):
 * - no control character anywhere outside string literals, and no name
 *   (quoted identifier, alias) that contains one or needs an escape for one:
 *   the printed tree stays one node per line;
 * - no SETTINGS (a subquery's `SETTINGS readonly = 0` would lift the limits
 *   the API appends), no INTO OUTFILE, no FORMAT clause;
 * - every APPLY transformer names one allowed function, with literal
 *   parameters only: ClickHouse's printed tree does not show it at all.
 * Returns the number of APPLY transformers, which must match the tree's.
 */
function checkTokens(canon: string, field: string, allowApply: ((name: string) => boolean) | null): { applies: number; tokens: Token[] } {
  if (CONTROL_CHARS.test(canon)) throw new SqlGuardError(field, 'control characters are not allowed outside string literals (write them as escapes inside quotes)');
  let tokens: Token[];
  try {
    tokens = tokenize(canon);
  } catch (err) {
    throw new SqlGuardError(field, `not valid ClickHouse SQL: ${(err as Error).message}`);
  }
  let applies = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'comment') throw new SqlGuardError(field, 'comments are not allowed here');
    if (t.kind === 'quoted') {
      const name = quotedName(t);
      if (name === null || NAME_FORBIDDEN_CHARS.test(name)) {
        throw new SqlGuardError(field, `the name ${t.text.slice(0, 60)} contains a control or invisible character; names may not`);
      }
    }
    if (t.kind !== 'word') continue;
    const word = t.text.toUpperCase();
    if (word === 'SETTINGS') throw new SqlGuardError(field, 'SETTINGS clauses are not allowed (the API sets the limits), nor a name spelled settings');
    if (word === 'OUTFILE') throw new SqlGuardError(field, 'INTO OUTFILE is not allowed (results are returned as JSON)');
    if (word === 'FORMAT' && tokens[i + 1]?.text !== '(') throw new SqlGuardError(field, 'FORMAT clauses are not allowed (results are returned as JSON)');
    if (word === 'APPLY') {
      if (!allowApply) throw new SqlGuardError(field, 'APPLY is not allowed here');
      applies++;
      let j = i + 1;
      const paren = tokens[j]?.text === '(';
      if (paren) j++;
      const fn = tokens[j];
      if (fn?.kind !== 'word' || tokens[j + 1]?.text === '->' || !allowApply(fn.text)) {
        throw new SqlGuardError(field, `APPLY must name one allowed function (APPLY(sum), APPLY(quantiles(0.5))); ${fn?.kind === 'word' && tokens[j + 1]?.text !== '->' ? `${fn.text}() is not allowed in API queries` : 'lambdas and expressions are not allowed there'}`);
      }
      j++;
      if (tokens[j]?.text === '(') {
        // Parameters of a parametric aggregate: literals only.
        for (j++; tokens[j] && tokens[j]!.text !== ')'; j++) {
          const p = tokens[j]!;
          if (!(p.kind === 'number' || p.kind === 'string' || p.text === ',' || p.text === '-')) {
            throw new SqlGuardError(field, 'the parameters of an APPLY function must be literals');
          }
        }
        j++;
      }
      if (paren && tokens[j]?.text !== ')') throw new SqlGuardError(field, 'APPLY must name one allowed function, nothing else');
    }
  }
  return { applies, tokens };
}

/**
 * The canonical text to explain: string literals that hold an escape (every
 * control character in one is an escape in canonical text) become `''`.
 * Their content never adds a node or names a table or function, so the tree
 * is the same; and no node that prints a string's content raw can then put
 * a line break into the printed tree.
 */
function withPlainStrings(canon: string, tokens: Token[]): string {
  let out = '';
  let from = 0;
  for (const t of tokens) {
    if (t.kind !== 'string' || !t.text.includes('\\')) continue;
    out += `${canon.slice(from, t.at)}''`;
    from = t.at + t.text.length;
  }
  return out + canon.slice(from);
}

function countKind(node: AstNode, kind: string): number {
  return (node.kind === kind ? 1 : 0) + node.children.reduce((n, c) => n + countKind(c, kind), 0);
}

/** Plain names only in qualified table names ClickHouse prints as `db.table`. */
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `db.table` as printed in the tree. ClickHouse prints `` `default.x`.t `` and
 * `` default.`x.t` `` both as `default.x.t`, so a name with more than one dot
 * is refused as ambiguous rather than split at a guess. A single-part name
 * with a dot in it (`` `system.one` ``) is read as db.table here: that can
 * only refuse more, never allow a table of another database.
 */
function splitQualified(name: string, field: string): { db: string | null; table: string } {
  const parts = name.split('.');
  if (parts.length > 2) throw new SqlGuardError(field, `the table name ${name} is ambiguous (a dot inside a quoted name); rename or refer to it unqualified`);
  return parts.length === 1 ? { db: null, table: name } : { db: parts[0]!, table: parts[1]! };
}

function checkTable(name: string, scope: GuardScope, field: string) {
  const { db, table } = splitQualified(name, field);
  if (db === null) return; // the default database, or a WITH name
  if (scope.databases.includes(db)) return;
  if (db === 'system' && PLAIN_NAME.test(table) && (ALLOWED_SYSTEM_TABLES as readonly string[]).includes(table)) return;
  throw new SqlGuardError(field, `table ${name} is not readable here (readable: tables of ${scope.databases.join(', ')}, and system.${ALLOWED_SYSTEM_TABLES.join(', system.')})`);
}

/** Functions whose right-hand side may name a table (`x IN t`): every IN of system.functions, IgnoreSet and global ones included. */
const IN_FUNCTION = /^(global)?(not)?(null)?in(ignoreset)?$/i;
/** Functions whose name is not an identifier are not functions ClickHouse can call: refuse, never guess. */
const FUNCTION_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function walkQuery(node: AstNode, parent: AstNode | null, cat: FunctionCatalogue, scope: GuardScope, field: string): void {
  if (!QUERY_NODES.has(node.kind)) {
    const what = node.kind === 'Set' ? 'SETTINGS clauses' : node.kind === 'QueryParameter' ? 'query parameters' : `${node.kind} clauses`;
    throw new SqlGuardError(field, `${what} are not allowed in API queries`);
  }
  if (node.kind === 'Function') {
    if (parent?.kind === 'TableExpression') {
      throw new SqlGuardError(field, `table function ${node.name}() is not allowed: API queries read tables only`);
    }
    if (!FUNCTION_NAME.test(node.name) || !resolveFunction(cat, node.name, cat.query, true)) {
      throw new SqlGuardError(field, `function ${node.name}() is not allowed in API queries (see the README for the allowed functions)`);
    }
    // `x IN t` reads table t.
    const rhs = node.children[0]?.children[1];
    if (IN_FUNCTION.test(node.name) && rhs?.kind === 'Identifier') checkTable(rhs.name, scope, field);
  }
  if (node.kind === 'TableIdentifier') checkTable(node.name, scope, field);
  for (const child of node.children) walkQuery(child, node, cat, scope, field);
}

export interface GuardedQuery {
  /** The statement to run (canonical text, or a rewrite onto system tables). */
  sql: string;
  params: Record<string, unknown>;
}

/** The name a word or quoted-identifier token stands for, or null for any other token. */
function nameOf(t: Token | undefined): string | null {
  if (t?.kind === 'word') return t.text;
  if (t?.kind === 'quoted') return quotedName(t);
  return null;
}

/**
 * SHOW TABLES, SHOW CREATE TABLE t, DESCRIBE TABLE t and EXISTS TABLE t are
 * answered from the system tables with query parameters: never run as
 * written (they could carry INTO OUTFILE, which only a SELECT can be proven not to).
 */
function rewriteMetaStatement(tokens: Token[], scope: GuardScope, field: string): GuardedQuery | null {
  const words = tokens.slice(0, 3).map((t) => (t.kind === 'word' ? t.text.toUpperCase() : ''));
  const statement = ['SHOW TABLES', 'SHOW CREATE TABLE', 'DESCRIBE TABLE', 'EXISTS TABLE'].find((s) => s.split(' ').every((w, i) => words[i] === w));
  if (!statement) return null;
  const rest = tokens.slice(statement.split(' ').length);
  if (statement === 'SHOW TABLES') {
    if (rest.length) throw new SqlGuardError(field, 'SHOW TABLES takes no clauses here; use SELECT name FROM system.tables WHERE ...');
    return { sql: 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', params: { db: scope.defaultDatabase } };
  }
  const names = rest.length === 1 ? [nameOf(rest[0])] : rest.length === 3 && rest[1]!.text === '.' ? [nameOf(rest[0]), nameOf(rest[2])] : [];
  if (names.length === 0 || names.some((n) => n === null || NAME_FORBIDDEN_CHARS.test(n))) throw new SqlGuardError(field, `${statement} takes one table name`);
  const db = names.length === 2 ? names[0]! : scope.defaultDatabase;
  const table = names[names.length - 1]!;
  if (!scope.databases.includes(db) && !(db === 'system' && (ALLOWED_SYSTEM_TABLES as readonly string[]).includes(table))) {
    throw new SqlGuardError(field, `table ${db}.${table} is not readable here`);
  }
  const params = { db, t: table };
  if (statement === 'EXISTS TABLE') return { sql: 'SELECT toUInt8(count() > 0) AS result FROM system.tables WHERE database = {db:String} AND name = {t:String}', params };
  if (statement === 'SHOW CREATE TABLE') {
    return { sql: 'SELECT create_table_query AS statement FROM system.tables WHERE database = {db:String} AND name = {t:String} AND database IN {dbs:Array(String)}', params: { ...params, dbs: scope.databases } };
  }
  return {
    sql: 'SELECT name, type, default_kind AS default_type, default_expression, comment, compression_codec AS codec_expression FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
    params,
  };
}

/**
 * What a read of a catalogue table really reads: only the rows of the
 * connector's databases, without host paths. The query keeps its shape (a
 * subquery stands where the table was, and takes the table's alias).
 */
function catalogueView(table: string, scope: GuardScope): string | null {
  const dbs = scope.databases.map(quoteString).join(', ');
  switch (table) {
    case 'tables': return `(SELECT * EXCEPT (data_paths, metadata_path) FROM system.tables WHERE database IN (${dbs}))`;
    case 'columns': return `(SELECT * FROM system.columns WHERE database IN (${dbs}))`;
    case 'parts': return `(SELECT * EXCEPT (path) FROM system.parts WHERE database IN (${dbs}))`;
    case 'databases': return `(SELECT * EXCEPT (data_path, metadata_path) FROM system.databases WHERE name IN (${dbs}))`;
    default: return null;
  }
}

/** The canonical text with every `system.<catalogue table>` replaced by its view onto the connector's databases. */
function scopeCatalogue(canon: string, tokens: Token[], scope: GuardScope): string {
  let out = '';
  let from = 0;
  for (let i = 0; i + 2 < tokens.length; i++) {
    if (nameOf(tokens[i]) !== 'system' || tokens[i + 1]!.text !== '.' || tokens[i - 1]?.text === '.' || tokens[i + 3]?.text === '.') continue;
    const table = nameOf(tokens[i + 2]) ?? '';
    const view = catalogueView(table, scope);
    if (!view) continue;
    const end = tokens[i + 2]!.at + tokens[i + 2]!.text.length;
    // A joined subquery needs an alias; the table's own name keeps `tables.name` meaning what it did.
    const aliased = (isWord(tokens[i - 1], 'FROM') || isWord(tokens[i - 1], 'JOIN')) && !isWord(tokens[i + 3], 'AS');
    out += `${canon.slice(from, tokens[i]!.at)}${view}${aliased ? ` AS ${table}` : ''}`;
    from = end;
    i += 2;
  }
  return out + canon.slice(from);
}

/** Prove that `sql` only reads the connector's tables; returns what to run (with readonly and limits added by the caller). */
export async function guardReadOnlyQuery(client: ClickHouseClient, sql: string, scope: GuardScope): Promise<GuardedQuery> {
  const field = 'query';
  const canon = await canonical(client, sql, field);
  const cat = await catalogue(client);
  const { applies, tokens } = checkTokens(canon, field, (name) => FUNCTION_NAME.test(name) && resolveFunction(cat, name, cat.query, true) !== null);
  const meta = rewriteMetaStatement(tokens, scope, field);
  if (meta) return meta;
  if (!/^(SELECT|WITH|\()/.test(canon)) {
    throw new SqlGuardError(field, 'only SELECT (with WITH, UNION, subqueries), SHOW TABLES, SHOW CREATE TABLE, DESCRIBE TABLE and EXISTS TABLE are allowed');
  }
  const ast = await selectAst(client, canon, tokens, field);
  if (countKind(ast, 'ColumnsApplyTransformer') !== applies) throw new SqlGuardError(field, 'APPLY must name one allowed function');
  walkQuery(ast, null, cat, scope, field);
  return { sql: scopeCatalogue(canon, tokens, scope), params: {} };
}

function walkExpression(node: AstNode, cat: FunctionCatalogue, field: string): void {
  if (!EXPRESSION_NODES.has(node.kind)) {
    const what = node.kind === 'Subquery' ? 'subqueries' : node.kind === 'QueryParameter' ? 'query parameters' : `${node.kind} clauses`;
    throw new SqlGuardError(field, `${what} are not allowed in a table expression`);
  }
  if (node.kind === 'Function' && (!FUNCTION_NAME.test(node.name) || !resolveFunction(cat, node.name, cat.expression, false))) {
    throw new SqlGuardError(field, `function ${node.name}() is not allowed in a table expression: only pure scalar functions are (${EXPRESSION_CATEGORIES.join(', ')})`);
  }
  for (const child of node.children) walkExpression(child, cat, field);
}

/**
 * Prove that a spec expression is a pure function of the row and return its
 * canonical text, which is what gets spliced into DDL (never the user's text).
 */
export async function guardExpression(client: ClickHouseClient, expression: string, field: string): Promise<string> {
  // Parsed as the select list of a bare SELECT: anything beyond expressions
  // (FROM, SETTINGS, UNION, INTO OUTFILE) becomes a clause of that SELECT and
  // is refused below. A list (`ts, id`, as Tinybird writes keys) stays a list.
  const canon = await canonical(client, `SELECT\n${expression}\n`, field);
  const { tokens } = checkTokens(canon, field, null);
  const ast = await selectAst(client, canon, tokens, field);
  // SelectWithUnionQuery > ExpressionList > exactly one SelectQuery whose only child is the select list.
  const select = ast.kind === 'SelectWithUnionQuery' && ast.children[0]?.children.length === 1 ? ast.children[0].children[0] : undefined;
  const list = select?.kind === 'SelectQuery' && select.children.length === 1 ? select.children[0] : undefined;
  if (!list || list.children.length === 0 || !canon.startsWith('SELECT ')) {
    throw new SqlGuardError(field, 'must be an expression (or a comma-separated list of expressions) over the columns, with no clauses');
  }
  const cat = await catalogue(client);
  for (const item of list.children) walkExpression(item, cat, field);
  return canon.slice('SELECT '.length);
}

/**
 * ClickHouse prints a named Tuple over several lines (`Tuple(\n    a Int64,\n
 * b String)`). That line breaking is layout only: names and literals inside a
 * type are printed quoted with escapes, so a raw line break there can only be
 * the printer's. Folded to one line, so that DDL and specs carry one-line
 * types and every other control character still means refusal.
 */
function singleLineType(printed: string): string {
  return printed.replace(/\(\n\s*/g, '(').replace(/,\n\s*/g, ', ');
}

/**
 * ClickHouse's canonical text of a column type: parsed by ClickHouse's own
 * type parser from a query parameter (data, never statement text), printed
 * back by the type itself. A type that ClickHouse would print differently
 * from how it reads it (a fixpoint check) is refused.
 */
export async function canonicalColumnType(client: ClickHouseClient, type: string, field: string): Promise<string> {
  const q = 'SELECT toTypeName(defaultValueOfTypeName({t:String})) AS t';
  const run = async (t: string) => {
    try {
      const rs = await client.query({ query: q, query_params: { t }, format: 'JSONEachRow' });
      return singleLineType((await rs.json<{ t: string }>())[0]!.t);
    } catch (err) {
      throw new SqlGuardError(field, `ClickHouse does not accept this type: ${parserReason(err)}`);
    }
  };
  const once = await run(type);
  if (CONTROL_CHARS.test(once) || (await run(once)) !== once) throw new SqlGuardError(field, 'ClickHouse does not print this type back as it reads it; write it in its canonical form');
  return once;
}
