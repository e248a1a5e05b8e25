import type { ClickHouseClient } from '@clickhouse/client';

/**
 * The one place that decides which user-written SQL may run: the read-only
 * queries of `POST /v1/sql` and the expressions of a data source spec
 * (partition, sorting and primary keys, TTL, column defaults).
 *
 * Both are allow-lists over ClickHouse's own parse of the text, never patterns
 * over the text itself:
 *
 * 1. `formatQuerySingleLine({q:String})` parses the text as data (nothing is
 *    executed) and returns its canonical form; a syntax error or a second
 *    statement ends here.
 * 2. `EXPLAIN AST SELECT * FROM (<canonical>)` gives the tree. Wrapping the
 *    statement in a subquery is what makes this step safe: `INTO OUTFILE` and
 *    `FORMAT` are only valid at the top level, so a statement carrying them is
 *    a syntax error here instead of an EXPLAIN whose output ClickHouse would
 *    write to a file.
 * 3. Every node kind, every function and every table in the tree must be on
 *    the allow-lists below. Backticked names are the same names to the parser.
 *
 * Functions are allowed by ClickHouse's own catalogue (`system.functions`,
 * by category), so new pure functions of a new ClickHouse release are
 * allowed without a change here, while whole categories that reach outside
 * the data (files, settings, dictionaries, the host) never are.
 */

export class SqlGuardError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
  }
}

/** Categories of `system.functions` a read-only query may call (aggregates included). */
const QUERY_DENIED_CATEGORIES = new Set(['', 'Other', 'Dictionary', 'Embedded Dictionary', 'Introspection', 'Internal', 'Machine Learning', 'AI']);

/** Categories a table expression (key, TTL, default) may call: pure scalar functions. */
export const EXPRESSION_CATEGORIES = [
  'Arithmetic', 'Comparison', 'Logical', 'Conditional', 'Type Conversion', 'Dates and Times', 'String', 'String Search',
  'String Replacement', 'String Splitting', 'Rounding', 'Mathematical', 'Hash', 'Tuple', 'Arrays', 'Map', 'JSON', 'Bit',
  'Encoding', 'UUID', 'IP Address', 'URL', 'Null', 'Random Number', 'Geo', 'Distance', 'Financial',
] as const;

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

/** Statements other than SELECT that a user may run, rewritten onto the allowed system tables. */
const IDENT = '(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\\\]|\\\\.)+`)';
const QUALIFIED = new RegExp(`^(${IDENT})(?:\\.(${IDENT}))?$`);

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
  const extras = new Set<string>(QUERY_EXTRA_FUNCTIONS);
  for (const r of rows) {
    // An alias (e.g. DATE_TRUNC -> dateTrunc) is judged as what it stands for.
    const target = r.alias_to ? byName.get(r.alias_to) ?? r : r;
    const category = target.categories;
    const aggregate = Boolean(Number(target.is_aggregate));
    if (aggregate) aggregates.add(r.name);
    if (!QUERY_DENIED_CATEGORIES.has(category) || extras.has(target.name)) query.add(r.name);
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

/** Parse `EXPLAIN AST` text (one node per line, indented by depth) into a tree. */
export function parseExplainAst(text: string): AstNode {
  const root: AstNode = { kind: '(root)', name: '', children: [] };
  const stack: Array<{ depth: number; node: AstNode }> = [{ depth: -1, node: root }];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const depth = raw.length - raw.trimStart().length;
    const body = raw.trim().replace(/ \(children \d+\)$/, '').replace(/ \(alias [^)]*\)$/, '');
    const space = body.indexOf(' ');
    const kind = space === -1 ? body : body.slice(0, space);
    const name = space === -1 ? '' : body.slice(space + 1);
    const node: AstNode = { kind, name, children: [] };
    while (stack.length > 1 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    stack[stack.length - 1]!.node.children.push(node);
    stack.push({ depth, node });
  }
  return root;
}

/**
 * EXPLAIN output, one node per line (the AST dumper escapes newlines inside
 * literals, so lines are nodes). A server answers TSV; chDB answers CSV
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

/** The AST of a canonical SELECT, obtained inside a subquery (see the module comment). */
async function selectAst(client: ClickHouseClient, canonicalSelect: string, field: string): Promise<AstNode> {
  let explained: string;
  try {
    explained = await explain(client, `EXPLAIN AST SELECT * FROM (\n${canonicalSelect}\n)`);
  } catch (err) {
    const reason = parserReason(err);
    if (/\bINTO OUTFILE\b|\bFORMAT\b/i.test(canonicalSelect) && /Syntax error/i.test(reason)) {
      throw new SqlGuardError(field, 'INTO OUTFILE and FORMAT clauses are not allowed (results are returned as JSON)');
    }
    throw new SqlGuardError(field, `not a reading query: ${reason}`);
  }
  // (root) > SelectWithUnionQuery > ExpressionList > SelectQuery > [Asterisk list, TablesInSelectQuery > Element > TableExpression > Subquery > user's query]
  const outer = parseExplainAst(explained).children[0];
  const subquery = outer?.children[0]?.children[0]?.children[1]?.children[0]?.children[0]?.children[0];
  const inner = subquery?.kind === 'Subquery' ? subquery.children[0] : undefined;
  if (!inner) throw new SqlGuardError(field, 'not a reading query');
  return inner;
}

function splitQualified(name: string): { db: string | null; table: string } {
  const dot = name.indexOf('.');
  return dot === -1 ? { db: null, table: name } : { db: name.slice(0, dot), table: name.slice(dot + 1) };
}

function checkTable(name: string, scope: GuardScope, field: string) {
  const { db, table } = splitQualified(name);
  if (db === null) return; // the default database, or a WITH name
  if (scope.databases.includes(db)) return;
  if (db === 'system' && (ALLOWED_SYSTEM_TABLES as readonly string[]).includes(table)) return;
  throw new SqlGuardError(field, `table ${name} is not readable here (readable: tables of ${scope.databases.join(', ')}, and system.${ALLOWED_SYSTEM_TABLES.join(', system.')})`);
}

const IN_FUNCTIONS = new Set(['in', 'notIn', 'globalIn', 'globalNotIn', 'nullIn', 'notNullIn', 'globalNullIn', 'globalNotNullIn']);

function walkQuery(node: AstNode, parent: AstNode | null, cat: FunctionCatalogue, scope: GuardScope, field: string): void {
  if (!QUERY_NODES.has(node.kind)) {
    const what = node.kind === 'Set' ? 'SETTINGS clauses' : node.kind === 'QueryParameter' ? 'query parameters' : `${node.kind} clauses`;
    throw new SqlGuardError(field, `${what} are not allowed in API queries`);
  }
  if (node.kind === 'Function') {
    if (parent?.kind === 'TableExpression') {
      throw new SqlGuardError(field, `table function ${node.name}() is not allowed: API queries read tables only`);
    }
    if (!resolveFunction(cat, node.name, cat.query, true)) {
      throw new SqlGuardError(field, `function ${node.name}() is not allowed in API queries (see the README for the allowed functions)`);
    }
    // `x IN t` reads table t.
    const rhs = node.children[0]?.children[1];
    if (IN_FUNCTIONS.has(node.name) && rhs?.kind === 'Identifier') checkTable(rhs.name, scope, field);
  }
  if (node.kind === 'TableIdentifier') checkTable(node.name, scope, field);
  for (const child of node.children) walkQuery(child, node, cat, scope, field);
}

export interface GuardedQuery {
  /** The statement to run (canonical text, or a rewrite onto system tables). */
  sql: string;
  params: Record<string, unknown>;
}

function unquote(ident: string): string {
  return ident.startsWith('`') ? ident.slice(1, -1).replace(/\\(.)/g, '$1') : ident;
}

/**
 * SHOW TABLES, SHOW CREATE TABLE t, DESCRIBE TABLE t and EXISTS TABLE t are
 * answered from the system tables with query parameters: never run as
 * written (they could carry INTO OUTFILE, which only a SELECT can be proven not to).
 */
function rewriteMetaStatement(canon: string, scope: GuardScope, field: string): GuardedQuery | null {
  const m = /^(SHOW TABLES|SHOW CREATE TABLE|DESCRIBE TABLE|EXISTS TABLE)(?: (.+))?$/.exec(canon);
  if (!m) return null;
  const [, statement, target] = m;
  if (statement === 'SHOW TABLES') {
    if (target !== undefined) throw new SqlGuardError(field, 'SHOW TABLES takes no clauses here; use SELECT name FROM system.tables WHERE ...');
    return { sql: 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', params: { db: scope.defaultDatabase } };
  }
  const q = target === undefined ? null : QUALIFIED.exec(target);
  if (!q) throw new SqlGuardError(field, `${statement} takes one table name`);
  const db = q[2] === undefined ? scope.defaultDatabase : unquote(q[1]!);
  const table = unquote(q[2] ?? q[1]!);
  checkTable(`${db}.${table}`, scope, field);
  const params = { db, t: table };
  if (statement === 'EXISTS TABLE') return { sql: 'SELECT toUInt8(count() > 0) AS result FROM system.tables WHERE database = {db:String} AND name = {t:String}', params };
  if (statement === 'SHOW CREATE TABLE') return { sql: 'SELECT create_table_query AS statement FROM system.tables WHERE database = {db:String} AND name = {t:String}', params };
  return {
    sql: 'SELECT name, type, default_kind AS default_type, default_expression, comment, compression_codec AS codec_expression FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
    params,
  };
}

/** Prove that `sql` only reads the connector's tables; returns what to run (with readonly and limits added by the caller). */
export async function guardReadOnlyQuery(client: ClickHouseClient, sql: string, scope: GuardScope): Promise<GuardedQuery> {
  const field = 'query';
  const canon = await canonical(client, sql, field);
  const meta = rewriteMetaStatement(canon, scope, field);
  if (meta) return meta;
  if (!/^(SELECT|WITH|\()/.test(canon)) {
    throw new SqlGuardError(field, 'only SELECT (with WITH, UNION, subqueries), SHOW TABLES, SHOW CREATE TABLE, DESCRIBE TABLE and EXISTS TABLE are allowed');
  }
  const ast = await selectAst(client, canon, field);
  walkQuery(ast, null, await catalogue(client), scope, field);
  return { sql: canon, params: {} };
}

function walkExpression(node: AstNode, cat: FunctionCatalogue, field: string): void {
  if (!EXPRESSION_NODES.has(node.kind)) {
    const what = node.kind === 'Subquery' ? 'subqueries' : node.kind === 'QueryParameter' ? 'query parameters' : `${node.kind} clauses`;
    throw new SqlGuardError(field, `${what} are not allowed in a table expression`);
  }
  if (node.kind === 'Function' && !resolveFunction(cat, node.name, cat.expression, false)) {
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
  const ast = await selectAst(client, canon, field);
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
