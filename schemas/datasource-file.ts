/**
 * Tinybird `.datasource` files: read them into a data source spec, and write a
 * spec back out, so the S3 data sources of a Tinybird project load unchanged.
 *
 * The format, read the way Tinybird's own parser reads it:
 *   - A key starts a line, followed by whitespace and its value:
 *       ENGINE_SORTING_KEY "country, timestamp"
 *     A single-line value loses a `#` comment (outside quotes) and then one
 *     pair of surrounding single or double quotes.
 *   - `KEY >` opens a block: the lines that follow are its value, up to the
 *     next line that starts at column 0 with a key. Block lines are usually
 *     indented, but need not be (a column-0 line inside a block is a key only
 *     when the key is written in capitals, so a column named `version` can
 *     start an unindented SCHEMA line). Blank lines may appear inside a block.
 *   - Lines whose first character (after indentation) is `#` are comments,
 *     except inside DESCRIPTION, where they are kept (Markdown headings).
 *   - Keys are case-insensitive; CRLF, CR and LF line endings are all accepted.
 *
 * Every key Tinybird defines is either used, ignored with a warning (TOKEN,
 * VERSION, TAGS, SHARED_WITH, FORWARD_QUERY: metadata this connector has no use
 * for), or refused with the reason. A file that is not an S3 data source
 * (Kafka, BigQuery, Snowflake, DynamoDB, GCS, a Join engine, an INCLUDE) is
 * refused with that as the reason, whatever else it holds.
 *
 * This module only translates; the result is validated by dataSourceSpecSchema.
 */
import { quoteIdent } from './identifiers.js';
import { ClickHouseTypeError, parseClickHouseType } from './clickhouse-type.js';
import { OBJECT_VALUES, sinceSchema, type DataSourceSpecInput } from './datasource.js';

type EngineInput = NonNullable<DataSourceSpecInput['engine']>;
type EngineName = NonNullable<EngineInput['engine']>;
type SettingValue = NonNullable<EngineInput['settings']>[string];
type IndexInput = NonNullable<EngineInput['indexes']>[number];
type ColumnInput = NonNullable<DataSourceSpecInput['columns']>[number];
type Format = NonNullable<DataSourceSpecInput['format']>;
type Compression = NonNullable<DataSourceSpecInput['compression']>;

/** A problem in a `.datasource` file. `line` is 1-based; 0 means the file as a whole. */
export class DatasourceFileError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
    this.name = 'DatasourceFileError';
  }
}

/** What reading a file gives: the spec, and one warning per line that was ignored. */
export interface DatasourceFileResult {
  spec: DataSourceSpecInput;
  /** `line N: <the line> is ignored: <why>` (`lines N-M: ...` for a block), in file order. */
  warnings: string[];
}

const ENGINES: readonly EngineName[] = ['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree'];
const IMPORT_SERVICES = ['s3', 's3_iamrole'] as const;
const THIS_CONNECTOR = 'this connector imports files from S3 (IMPORT_SERVICE s3 or s3_iamrole)';
/** Tinybird's other connectors, by IMPORT_SERVICE value. */
const OTHER_SERVICES: Readonly<Record<string, string>> = {
  bigquery: 'BigQuery',
  snowflake: 'Snowflake',
  dynamodb: 'DynamoDB',
  gcs: 'Google Cloud Storage',
  gcs_hmac: 'Google Cloud Storage',
  kafka: 'Kafka',
};

const FORMAT_NAMES: Readonly<Record<string, Format>> = {
  csv: 'csv',
  ndjson: 'ndjson',
  jsonl: 'ndjson',
  json: 'ndjson',
  parquet: 'parquet',
  auto: 'auto',
};
const COMPRESSION_SUFFIXES: Readonly<Record<string, Compression>> = {
  gz: 'gzip',
  gzip: 'gzip',
  zst: 'zstd',
  zstd: 'zstd',
  zip: 'zip',
};
/** What toDatasourceFile writes for each compression (none/auto have no suffix). */
const COMPRESSION_SUFFIX_OUT: Partial<Record<Compression, string>> = { gzip: 'gz', zstd: 'zst', zip: 'zip' };

/** Keys this reader uses. */
const USED_KEYS = new Set([
  'DESCRIPTION',
  'SCHEMA',
  'INDEXES',
  'INDICES',
  'ENGINE',
  'ENGINE_PARTITION_KEY',
  'ENGINE_SORTING_KEY',
  'ENGINE_PRIMARY_KEY',
  'ENGINE_SAMPLING_KEY',
  'ENGINE_TTL',
  'ENGINE_SETTINGS',
  'ENGINE_VER',
  'ENGINE_IS_DELETED',
  'IMPORT_SERVICE',
  'IMPORT_CONNECTION_NAME',
  'IMPORT_BUCKET_URI',
  'IMPORT_SCHEDULE',
  'IMPORT_STRATEGY',
  'IMPORT_FORMAT',
  'IMPORT_FROM_TIMESTAMP',
]);

/** Tinybird metadata with no meaning here: read, ignored, and reported as a warning. */
const IGNORED_KEYS: Readonly<Record<string, string>> = {
  TOKEN: "access tokens are Tinybird's; this API has its own bearer tokens (S3CH_API_TOKENS)",
  VERSION: 'Tinybird resource versions have no equivalent; the data source is named by the file',
  TAGS: 'Tinybird tags have no equivalent here',
  SHARED_WITH: 'sharing with other Tinybird workspaces has no equivalent here',
  FORWARD_QUERY: "forward queries migrate a Tinybird data source's rows on a schema change; here new columns are added to the table",
};

/** Every other key Tinybird knows (its parser's commands), so a block ends at them and they are refused by name. */
const OTHER_TINYBIRD_KEYS = new Set(['INCLUDE', 'NODE', 'SQL', 'TYPE', 'DATASOURCE', 'FROM', 'SOURCE', 'MAINTAINER', 'SCOPE', 'TARGET_DATASOURCE', 'COPY_SCHEDULE', 'COPY_MODE', 'MODE', 'RESOURCE', 'FILTER', 'TEST', 'SETTINGS', 'PARTITION_KEY', 'SORTING_KEY', 'PRIMARY_KEY', 'SAMPLING_KEY', 'TTL']);

function isTinybirdKey(key: string): boolean {
  return USED_KEYS.has(key) || key in IGNORED_KEYS || OTHER_TINYBIRD_KEYS.has(key) || /^(KAFKA|IMPORT|EXPORT|ENGINE)_[A-Z0-9_]+$/.test(key);
}

/** Why a key is refused. */
function refusedKeyReason(key: string): string {
  if (key === 'ENGINE_SUMMING_COLUMNS') {
    return 'ENGINE_SUMMING_COLUMNS is not supported yet: remove it to sum every numeric column outside the sorting key';
  }
  if (key === 'ENGINE_SIGN' || key === 'ENGINE_VERSION') return `${key} is for (Versioned)CollapsingMergeTree, which is not supported; use ${ENGINES.join(', ')}`;
  if (key.startsWith('ENGINE_')) {
    return `unsupported key ${key}: the ENGINE_ keys read are PARTITION_KEY, SORTING_KEY, PRIMARY_KEY, SAMPLING_KEY, TTL, SETTINGS, VER and IS_DELETED`;
  }
  if (key.startsWith('IMPORT_')) {
    return `unsupported key ${key}: the IMPORT_ keys read are SERVICE, CONNECTION_NAME, BUCKET_URI, SCHEDULE, STRATEGY, FORMAT and FROM_TIMESTAMP`;
  }
  if (key.startsWith('EXPORT_') || ['NODE', 'SQL', 'TYPE', 'DATASOURCE', 'TARGET_DATASOURCE', 'COPY_SCHEDULE', 'COPY_MODE'].includes(key)) {
    return `unsupported key ${key}: it belongs in a Tinybird .pipe file, not a .datasource file`;
  }
  return `unsupported key ${key}`;
}

/** Column modifiers that ClickHouse allows after the type; DEFAULT and CODEC are read, the rest refused. */
const COLUMN_MODIFIERS = new Set(['DEFAULT', 'CODEC', 'MATERIALIZED', 'ALIAS', 'EPHEMERAL', 'COMMENT', 'TTL', 'NULL', 'NOT', 'SETTINGS', 'STATISTICS', 'PRIMARY']);

interface Line {
  n: number;
  text: string;
}

interface Entry {
  key: string;
  line: number;
  /** The line as written (for warnings). */
  raw: string;
  /** The text after the key on a single-line entry. */
  value: string;
  /** The lines of a `KEY >` block, or null for a single-line entry. */
  block: Line[] | null;
}

// ---------------------------------------------------------------------------
// Reading

/**
 * Parse the text of a `.datasource` file into a spec named `opts.name` (the
 * file name without `.datasource`). Throws DatasourceFileError naming the line.
 */
export function parseDatasourceFile(text: string, opts: { name: string }): DataSourceSpecInput {
  return readDatasourceFile(text, opts).spec;
}

/** Like parseDatasourceFile, and also says which lines were ignored. */
export function readDatasourceFile(text: string, opts: { name: string }): DatasourceFileResult {
  const { entries, problems } = scanEntries(text);
  refuseOtherKinds(entries);
  // The first problem in file order, once the file is known to be an S3 data source.
  if (problems.length > 0) throw problems[0]!;

  const warnings: string[] = [];
  let description: string | undefined;
  let columns: ColumnInput[] | undefined;
  const engine: EngineInput = {};
  let connection: string | undefined;
  let bucketUri: string | undefined;
  let schedule: string | undefined;
  let since: string | undefined;
  let format: Format | undefined;
  let compression: Compression | undefined;

  for (const entry of entries) {
    const { key, line } = entry;
    if (key in IGNORED_KEYS) {
      const lines = entry.block ? entry.block.filter((l) => l.text.trim() !== '' && !l.text.trimStart().startsWith('#')) : [];
      const where = lines.length > 0 ? `lines ${line}-${lines[lines.length - 1]!.n}` : `line ${line}`;
      let shown = [entry.raw.trim(), ...lines.map((l) => l.text.trim())].join(' ');
      if (shown.length > 200) shown = `${shown.slice(0, 197)}...`;
      warnings.push(`${where}: ${shown} is ignored: ${IGNORED_KEYS[key]}`);
      continue;
    }
    switch (key) {
      case 'DESCRIPTION': {
        const d = entry.block ? blockText(entry.block, { keepComments: true }) : lineValue(entry.value);
        description = d.trim() === '' ? undefined : d;
        break;
      }
      case 'SCHEMA': {
        const lines = entry.block ?? (entry.value.trim() === '' ? [] : [{ n: line, text: entry.value }]);
        columns = splitColumnDefinitions(lines).map((def) => ({ ...parseColumn(def.line, def.text), ...(def.directive && objectDirective(def.directive.line, def.directive.text)) }));
        if (columns.length === 0) throw new DatasourceFileError(line, 'SCHEMA has no columns');
        break;
      }
      case 'INDEXES':
      case 'INDICES': {
        const lines = entry.block ?? (entry.value.trim() === '' ? [] : [{ n: line, text: lineValue(entry.value) }]);
        const indexes = parseIndexes(lines);
        if (indexes.length > 0) engine.indexes = indexes;
        break;
      }
      case 'ENGINE': {
        const v = scalar(entry).replace(/\(\s*\)$/, '');
        if (v === '') break;
        const found = ENGINES.find((e) => e === v);
        if (!found) throw new DatasourceFileError(line, `ENGINE ${v} is not supported; use one of ${ENGINES.join(', ')}`);
        engine.engine = found;
        break;
      }
      case 'ENGINE_PARTITION_KEY':
      case 'ENGINE_SORTING_KEY':
      case 'ENGINE_PRIMARY_KEY':
      case 'ENGINE_SAMPLING_KEY':
      case 'ENGINE_TTL':
      case 'ENGINE_VER':
      case 'ENGINE_IS_DELETED': {
        const v = scalar(entry);
        if (v.trim() === '') break;
        const field = (
          {
            ENGINE_PARTITION_KEY: 'partitionKey',
            ENGINE_SORTING_KEY: 'sortingKey',
            ENGINE_PRIMARY_KEY: 'primaryKey',
            ENGINE_SAMPLING_KEY: 'samplingKey',
            ENGINE_TTL: 'ttl',
            ENGINE_VER: 'ver',
            ENGINE_IS_DELETED: 'isDeleted',
          } as const
        )[key];
        engine[field] = v;
        break;
      }
      case 'ENGINE_SETTINGS': {
        const settings = parseSettings(scalar(entry), line);
        if (settings) engine.settings = settings;
        break;
      }
      case 'IMPORT_SERVICE': {
        const v = scalar(entry);
        if (!(IMPORT_SERVICES as readonly string[]).includes(v.toLowerCase())) {
          throw new DatasourceFileError(line, `IMPORT_SERVICE ${v === '' ? '(empty)' : v} is not supported; allowed values: ${IMPORT_SERVICES.join(', ')}`);
        }
        break;
      }
      case 'IMPORT_CONNECTION_NAME':
        connection = nonEmpty(scalar(entry));
        break;
      case 'IMPORT_BUCKET_URI':
        bucketUri = nonEmpty(scalar(entry));
        break;
      case 'IMPORT_SCHEDULE':
        schedule = nonEmpty(scalar(entry));
        break;
      case 'IMPORT_FROM_TIMESTAMP': {
        const v = scalar(entry);
        if (v === '') break;
        since = fromTimestamp(v);
        if (since === undefined) {
          throw new DatasourceFileError(line, `IMPORT_FROM_TIMESTAMP ${v} is not a date-time; write it as Tinybird does, YYYY-MM-DDTHH:MM:SSZ (an offset such as +02:00 instead of Z is read too)`);
        }
        break;
      }
      case 'IMPORT_STRATEGY': {
        const v = scalar(entry);
        if (v === '' || v.toUpperCase() === 'APPEND') break;
        if (v.toUpperCase() === 'REPLACE') {
          throw new DatasourceFileError(line, 'IMPORT_STRATEGY REPLACE is not supported; only APPEND is (new files are appended, existing rows are kept)');
        }
        throw new DatasourceFileError(line, `IMPORT_STRATEGY ${v} is not supported; only APPEND is`);
      }
      case 'IMPORT_FORMAT': {
        const v = scalar(entry).toLowerCase();
        if (v === '') break;
        const dot = v.indexOf('.');
        const base = dot === -1 ? v : v.slice(0, dot);
        const suffix = dot === -1 ? undefined : v.slice(dot + 1);
        const f = FORMAT_NAMES[base];
        const c = suffix === undefined ? undefined : COMPRESSION_SUFFIXES[suffix];
        if (!f || (suffix !== undefined && !c)) {
          throw new DatasourceFileError(
            line,
            `IMPORT_FORMAT ${v} is not supported; use csv, ndjson or parquet, optionally with a compression suffix (.gz, .zst, .zip), e.g. csv.gz`,
          );
        }
        format = f;
        compression = c;
        break;
      }
      default:
        // scanEntries reports every other key as a problem.
        throw new DatasourceFileError(line, refusedKeyReason(key));
    }
  }

  if (connection === undefined) {
    throw new DatasourceFileError(0, 'IMPORT_CONNECTION_NAME is missing; it names the connection to read the bucket with');
  }
  if (bucketUri === undefined) {
    throw new DatasourceFileError(0, 'IMPORT_BUCKET_URI is missing; it says which files to import, e.g. s3://my-bucket/events/*.csv');
  }

  const resolvedFormat = format ?? impliedFormat(bucketUri, columns);
  if (resolvedFormat === 'parquet' && columns) {
    const schemaLine = entries.find((e) => e.key === 'SCHEMA')!.line;
    columns = columns.map((c) => parquetColumn(c, schemaLine));
  }

  const spec: DataSourceSpecInput = {
    name: opts.name,
    ...(description !== undefined && { description }),
    connection,
    bucketUri,
    format: resolvedFormat,
    ...(compression !== undefined && { compression }),
    ...(schedule !== undefined && { schedule }),
    ...(since !== undefined && { since }),
    ...(columns !== undefined && { columns }),
    ...(Object.keys(engine).length > 0 && { engine }),
  };
  return { spec, warnings };
}

/**
 * IMPORT_FROM_TIMESTAMP as the spec's `since`: ISO 8601 with Z or an offset,
 * kept as written; without a zone (or as a date alone) it is UTC, which is how
 * Tinybird reads it. Undefined when it is no date-time.
 */
function fromTimestamp(v: string): string | undefined {
  if (sinceSchema.safeParse(v).success) return v;
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?))?$/.exec(v);
  if (!m) return undefined;
  const utc = `${m[1]}T${m[2] ?? '00:00:00'}Z`;
  return sinceSchema.safeParse(utc).success ? utc : undefined;
}

/**
 * The format when IMPORT_FORMAT does not say: Parquet by the bucket URI's
 * extension (Tinybird's Parquet schemas carry `json:` paths too), NDJSON when
 * columns have JSONPaths, otherwise by each file's extension.
 */
function impliedFormat(bucketUri: string | undefined, columns: ReadonlyArray<{ path?: string; source?: string }> | undefined): Format {
  if (bucketUri !== undefined && /\.parquet$/i.test(bucketUri)) return 'parquet';
  return columns?.some((c) => c.path !== undefined) ? 'ndjson' : 'auto';
}

/** Parquet maps columns by name: `json:$.src` names the file's column `src`. */
function parquetColumn(c: ColumnInput, line: number): ColumnInput {
  if (c.path === undefined) return c;
  const m = /^\$(?:\.([^.[\]']+)|\.?\['([^']+)'\])$/.exec(c.path);
  if (!m) {
    throw new DatasourceFileError(
      line,
      `column ${quoteIdent(c.name)}: Parquet columns are read by name, so json:${c.path} cannot be used; write json:$.<column name in the file>`,
    );
  }
  const { path: _path, ...rest } = c;
  const source = m[1] ?? m[2]!;
  return source === c.name ? rest : { ...rest, source };
}

/** Refuse a file that is not an S3 data source, naming what it is, before any other complaint. */
function refuseOtherKinds(entries: Entry[]): void {
  const first = (pred: (e: Entry) => boolean) => entries.find(pred);
  const kafka = first((e) => e.key.startsWith('KAFKA_'));
  if (kafka) throw new DatasourceFileError(kafka.line, `this is a Kafka data source (${kafka.key}); ${THIS_CONNECTOR}`);
  const service = first((e) => e.key === 'IMPORT_SERVICE');
  const serviceName = service ? OTHER_SERVICES[scalar(service).toLowerCase()] : undefined;
  if (service && serviceName) throw new DatasourceFileError(service.line, `this is a ${serviceName} data source (IMPORT_SERVICE ${scalar(service)}); ${THIS_CONNECTOR}`);
  const dynamo = first((e) => e.key === 'IMPORT_TABLE_ARN' || e.key === 'IMPORT_EXPORT_BUCKET');
  if (dynamo) throw new DatasourceFileError(dynamo.line, `this is a DynamoDB data source (${dynamo.key}); ${THIS_CONNECTOR}`);
  const warehouse = first((e) => e.key === 'IMPORT_EXTERNAL_DATASOURCE' || e.key === 'IMPORT_QUERY');
  if (warehouse) throw new DatasourceFileError(warehouse.line, `this is a BigQuery or Snowflake data source (${warehouse.key}); ${THIS_CONNECTOR}`);
  const join = first((e) => (e.key === 'ENGINE' && /^join\b/i.test(scalar(e))) || /^ENGINE_(JOIN_STRICTNESS|JOIN_TYPE|KEY_COLUMNS)$/.test(e.key));
  if (join) {
    throw new DatasourceFileError(join.line, 'this is a Join engine data source (an in-memory lookup table filled by pipes); this connector loads S3 files into MergeTree tables');
  }
  const include = first((e) => e.key === 'INCLUDE');
  if (include) {
    throw new DatasourceFileError(include.line, `INCLUDE ${scalar(include)} pulls in a file this connector does not have; paste the included lines into the .datasource file instead`);
  }
  if (!entries.some((e) => e.key.startsWith('IMPORT_'))) {
    throw new DatasourceFileError(
      0,
      'this data source has no IMPORT_ keys: Tinybird fills it from the Events API, a pipe or a materialized view; this connector imports files from S3 and needs IMPORT_CONNECTION_NAME and IMPORT_BUCKET_URI',
    );
  }
}

/**
 * Split the file into key entries. Problems (unknown keys, stray lines, keys
 * given twice) are collected, not thrown, so that a file of another kind is
 * refused for being that kind rather than for one of its lines.
 */
function scanEntries(text: string): { entries: Entry[]; problems: DatasourceFileError[] } {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const entries: Entry[] = [];
  const problems: DatasourceFileError[] = [];
  const firstLine = new Map<string, number>();
  let open: Entry | null = null;

  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw.trim() === '') {
      open?.block?.push({ n, text: '' });
      return;
    }
    const indented = raw[0] === ' ' || raw[0] === '\t';
    const word = /^[ \t]*([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]|$)/.exec(raw)?.[1];
    const key = word?.toUpperCase();
    if (open?.block) {
      // Inside a block, only a column-0 key in capitals (or `key >`) ends it: Tinybird reads unindented lines as block content.
      // In a block written without indentation, a key in lower case may be a column name (`version UInt32`), so only a
      // capitalised key or `key >` ends it; an indented block ends at any key, as in Tinybird.
      const contentLines = open.block.filter((l) => l.text !== '');
      const indentedBlock = contentLines.length > 0 && contentLines.every((l) => /^[ \t]/.test(l.text));
      const endsBlock =
        !indented && key !== undefined && isTinybirdKey(key) && (word === key || indentedBlock || /^[A-Za-z_][A-Za-z0-9_]*[ \t]*>[ \t]*$/.test(raw.trimEnd()));
      if (!endsBlock) {
        // A column-0 comment neither ends nor joins an open block.
        if (!indented && raw.startsWith('#')) return;
        open.block.push({ n, text: raw.trimEnd() });
        return;
      }
    }
    if (raw.trimStart().startsWith('#')) return;

    const m = /^[ \t]*([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*(>)[ \t]*|[ \t]+(.*?)[ \t]*|[ \t]*)$/.exec(raw);
    if (!m || (indented && !isTinybirdKey(m[1]!.toUpperCase()))) {
      problems.push(
        new DatasourceFileError(
          n,
          indented
            ? 'indented line outside a block; only the lines after "KEY >" may be indented'
            : `expected "KEY value" or "KEY >" at the start of the line, got ${JSON.stringify(raw.slice(0, 40))}`,
        ),
      );
      open = null;
      return;
    }
    const k = m[1]!.toUpperCase();
    // `KEY > # comment` opens a block too.
    const opensBlock = m[2] !== undefined || (m[3] !== undefined && lineValue(m[3]) === '>' && !/^["']/.test(m[3]));
    const entry: Entry = { key: k, line: n, raw, value: opensBlock ? '' : (m[3] ?? ''), block: opensBlock ? [] : null };
    entries.push(entry);
    open = entry;
    if (!USED_KEYS.has(k) && !(k in IGNORED_KEYS)) {
      problems.push(new DatasourceFileError(n, refusedKeyReason(k)));
      return;
    }
    const first = firstLine.get(k);
    if (first !== undefined && !(k in IGNORED_KEYS)) problems.push(new DatasourceFileError(n, `${k} is given twice (first at line ${first})`));
    if (first === undefined) firstLine.set(k, n);
  });
  return { entries, problems };
}

/**
 * A single-line value as Tinybird reads it: a `#` outside quotes starts a
 * comment, then one pair of surrounding quotes (single or double) is removed.
 */
function lineValue(value: string): string {
  let quote: string | null = null;
  let end = value.length;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#') {
      end = i;
      break;
    }
  }
  return stripQuotes(value.slice(0, end).trim());
}

/** The value of an entry that holds one piece of text: a single line, or a block joined by newlines; quotes stripped. */
function scalar(entry: Entry): string {
  return entry.block ? stripQuotes(blockText(entry.block, { keepComments: false })) : lineValue(entry.value);
}

/** Dedent a block by its common indentation and drop leading/trailing blank lines. */
function blockText(block: Line[], opts: { keepComments: boolean }): string {
  const lines = block.map((l) => l.text).filter((t) => opts.keepComments || !t.trimStart().startsWith('#'));
  const indents = lines.filter((t) => t.trim() !== '').map((t) => /^[ \t]*/.exec(t)![0].length);
  const indent = indents.length > 0 ? Math.min(...indents) : 0;
  const dedented = lines.map((t) => (t.trim() === '' ? '' : t.slice(indent)));
  while (dedented.length > 0 && dedented[0] === '') dedented.shift();
  while (dedented.length > 0 && dedented[dedented.length - 1] === '') dedented.pop();
  return dedented.join('\n');
}

function nonEmpty(s: string): string | undefined {
  return s === '' ? undefined : s;
}

/** Strip one pair of surrounding double or single quotes. */
function stripQuotes(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0]) return t.slice(1, -1);
  return t;
}

/** The connector's own column comment: `-- s3ch:from=key`, `-- s3ch:from=hive partition=dt`. */
const DIRECTIVE = /^s3ch:/i;

/**
 * Split a SCHEMA block into column definitions. A definition ends at a comma
 * or at the end of a line, unless a parenthesis or quote is still open (then
 * it continues on the next line). `--` starts a comment to the end of the
 * line; a comment starting `s3ch:` belongs to the column on its line (the
 * last one, when a line holds several). Returns each definition with its
 * first line.
 */
function splitColumnDefinitions(lines: Line[]): { line: number; text: string; directive?: { line: number; text: string } }[] {
  const out: { line: number; text: string; end: number; directive?: { line: number; text: string } }[] = [];
  let buf = '';
  let start = 0;
  let depth = 0;
  let quote: string | null = null;
  let quoteLine = 0;
  let lastSeparator = 'start' as 'start' | 'comma' | 'eol';
  let directive: { line: number; text: string } | undefined;
  const add = (s: string, n: number) => {
    if (buf === '') start = n;
    buf += s;
  };
  const flush = (sep: 'comma' | 'eol', n: number) => {
    if (buf.trim() !== '') {
      out.push({ line: start, text: buf.trim(), end: n, ...(directive && { directive }) });
      directive = undefined;
      lastSeparator = sep;
    }
    buf = '';
  };
  const attach = (n: number, comment: string) => {
    const d = { line: n, text: comment };
    const last = out[out.length - 1];
    if (buf.trim() !== '') {
      if (directive) throw new DatasourceFileError(n, 'a column has two s3ch: comments');
      directive = d;
    } else if (last && last.end === n) {
      if (last.directive) throw new DatasourceFileError(n, 'a column has two s3ch: comments');
      last.directive = d;
    } else {
      throw new DatasourceFileError(n, 'an s3ch: comment must end the line of the column it is about, e.g. `src` String -- s3ch:from=key');
    }
  };

  for (const { n, text } of lines) {
    if (quote === null && depth === 0 && (text.trim() === '' || /^\s*(#|--)/.test(text))) {
      const comment = /^\s*--\s*(.*)$/.exec(text)?.[1]?.trim();
      if (comment !== undefined && DIRECTIVE.test(comment)) attach(n, comment);
      continue;
    }
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (quote !== null) {
        add(ch, n);
        if (ch === '\\' && i + 1 < text.length) add(text[++i]!, n);
        else if (ch === quote) quote = null;
        continue;
      }
      if (ch === '-' && text[i + 1] === '-') {
        const comment = text.slice(i + 2).trim();
        if (DIRECTIVE.test(comment)) {
          // The column this line ends: flush it first, so the comment attaches to it.
          if (depth === 0 && buf.trim() !== '') {
            const pending = directive;
            directive = undefined;
            flush('eol', n);
            if (pending) out[out.length - 1]!.directive = pending;
          }
          attach(n, comment);
        }
        break;
      }
      if (buf === '' && (ch === ' ' || ch === '\t')) continue;
      if (ch === "'" || ch === '"' || ch === '`') {
        quote = ch;
        quoteLine = n;
      } else if (ch === '(') {
        depth++;
      } else if (ch === ')') {
        if (depth === 0) throw new DatasourceFileError(n, "unbalanced ')' in SCHEMA");
        depth--;
      } else if (ch === ',' && depth === 0) {
        if (buf.trim() === '') {
          // Leading-comma style (`, b Int32` on the next line) is fine once; `a,,b` is not.
          if (lastSeparator !== 'eol') throw new DatasourceFileError(n, 'empty column definition in SCHEMA (two commas in a row?)');
          lastSeparator = 'comma';
          continue;
        }
        flush('comma', n);
        continue;
      }
      add(ch, n);
    }
    if (quote !== null || depth > 0) add('\n', n);
    else flush('eol', n);
  }
  if (quote !== null) throw new DatasourceFileError(quoteLine, `unclosed ${quote} in SCHEMA`);
  if (depth > 0) throw new DatasourceFileError(start, "unclosed '(' in SCHEMA");
  return out.map(({ end: _end, ...def }) => def);
}

/**
 * Read `s3ch:from=<value>` (and, for hive, an optional `partition=<name>`):
 * the column takes its value from the object, not the file's content.
 */
function objectDirective(line: number, text: string): Pick<ColumnInput, 'from' | 'partition'> {
  const out: Pick<ColumnInput, 'from' | 'partition'> = {};
  for (const token of text.replace(DIRECTIVE, '').trim().split(/\s+/)) {
    const m = /^(from|partition)=(\S+)$/i.exec(token);
    if (!m) throw new DatasourceFileError(line, `unexpected ${JSON.stringify(token)} in an s3ch: comment; write s3ch:from=<${OBJECT_VALUES.join('|')}> [partition=<name>]`);
    const field = m[1]!.toLowerCase() as 'from' | 'partition';
    if (out[field] !== undefined) throw new DatasourceFileError(line, `${field} is given twice in an s3ch: comment`);
    if (field === 'partition') {
      out.partition = m[2]!;
      continue;
    }
    const value = OBJECT_VALUES.find((v) => v.toLowerCase() === m[2]!.toLowerCase());
    if (!value) throw new DatasourceFileError(line, `s3ch:from=${m[2]} is not one of ${OBJECT_VALUES.join(', ')}`);
    out.from = value;
  }
  if (out.from === undefined) throw new DatasourceFileError(line, `an s3ch: comment needs from=<${OBJECT_VALUES.join('|')}>`);
  if (out.partition !== undefined && out.from !== 'hive') throw new DatasourceFileError(line, 'partition= is for s3ch:from=hive');
  return out;
}

/**
 * Parse one column definition: name, type, then in any order an optional
 * `json:$.path`, `DEFAULT expr` and `CODEC(...)`.
 */
function parseColumn(line: number, def: string): ColumnInput {
  let pos = 0;
  let name: string;
  if (def[0] === '`' || def[0] === '"') {
    const q = readQuoted(def, 0, line);
    name = q.value;
    pos = q.end;
  } else {
    const m = /^[^\s`'"(),]+/.exec(def);
    if (!m) throw new DatasourceFileError(line, `expected a column name, got ${JSON.stringify(def.slice(0, 40))}`);
    name = m[0];
    pos = m[0].length;
  }
  const shown = quoteIdent(name);

  const skipSpace = () => {
    while (pos < def.length && /\s/.test(def[pos]!)) pos++;
  };
  /** The keyword at `pos`, upper-cased, if a column modifier starts there. */
  const modifierAt = (at: number): string | undefined => {
    const w = /^[A-Za-z_]+(?![A-Za-z0-9_])/.exec(def.slice(at))?.[0].toUpperCase();
    return w !== undefined && COLUMN_MODIFIERS.has(w) ? w : undefined;
  };
  /** Whether a `json:` path in backticks starts at `at`. */
  const pathAt = (at: number) => def.startsWith('`json:', at);

  // The type runs to the first clause: a json path, or a modifier keyword outside parentheses.
  skipSpace();
  const typeStart = pos;
  if (pos >= def.length || pathAt(pos) || modifierAt(pos) !== undefined) {
    throw new DatasourceFileError(line, `column ${shown} has no type; write e.g. ${shown} String`);
  }
  pos = clauseEnd(def, pos, line, (at) => pathAt(at) || modifierAt(at) !== undefined);
  const type = def.slice(typeStart, pos).trim();
  try {
    parseClickHouseType(type);
  } catch (e) {
    if (e instanceof ClickHouseTypeError) throw new DatasourceFileError(line, `column ${shown}: ${e.reason}`);
    throw e;
  }

  let path: string | undefined;
  let dflt: string | undefined;
  let codec: string | undefined;
  for (;;) {
    skipSpace();
    if (pos >= def.length) break;
    if (def[pos] === '`') {
      const q = readQuoted(def, pos, line);
      if (!q.value.startsWith('json:')) {
        throw new DatasourceFileError(line, `unexpected ${def.slice(pos, q.end)} after the type of column ${shown}; expected \`json:$.path\``);
      }
      if (path !== undefined) throw new DatasourceFileError(line, `column ${shown} has two json paths`);
      path = q.value.slice('json:'.length).trim();
      pos = q.end;
      continue;
    }
    const word = modifierAt(pos);
    if (word === 'DEFAULT') {
      if (dflt !== undefined) throw new DatasourceFileError(line, `column ${shown} has two DEFAULT clauses`);
      const start = pos + word.length;
      pos = clauseEnd(def, start, line, (at) => pathAt(at) || (modifierAt(at) !== undefined && modifierAt(at) !== 'NULL' && modifierAt(at) !== 'NOT'));
      dflt = def.slice(start, pos).trim();
      if (dflt === '') throw new DatasourceFileError(line, `column ${shown}: DEFAULT needs an expression`);
      continue;
    }
    if (word === 'CODEC') {
      if (codec !== undefined) throw new DatasourceFileError(line, `column ${shown} has two CODEC clauses`);
      let at = pos + word.length;
      while (at < def.length && /\s/.test(def[at]!)) at++;
      if (def[at] !== '(') throw new DatasourceFileError(line, `column ${shown}: CODEC needs a list in parentheses, e.g. CODEC(ZSTD(1))`);
      const end = balancedEnd(def, at, line);
      codec = def.slice(at + 1, end - 1).trim().replace(/\s+/g, ' ');
      pos = end;
      continue;
    }
    if (word === 'MATERIALIZED' || word === 'ALIAS' || word === 'EPHEMERAL') {
      throw new DatasourceFileError(line, `${word} columns are computed by ClickHouse, not read from files: not supported (column ${shown}); use DEFAULT for a value computed when a file has none`);
    }
    if (word !== undefined) {
      const what = word === 'NULL' || word === 'NOT' ? 'NULL / NOT NULL (use Nullable(T) as the type)' : word;
      throw new DatasourceFileError(line, `${what} is not supported (column ${shown})`);
    }
    throw new DatasourceFileError(line, `unexpected ${JSON.stringify(def.slice(pos, pos + 40))} after the type of column ${shown}`);
  }

  return {
    name,
    type,
    ...(path !== undefined && { path }),
    ...(dflt !== undefined && { default: dflt }),
    ...(codec !== undefined && { codec }),
  };
}

/** Index of the first position from `start`, outside quotes and parentheses, where `stop` holds (or the end). */
function clauseEnd(s: string, start: number, line: number, stop: (at: number) => boolean): number {
  let depth = 0;
  let i = start;
  while (i < s.length) {
    const ch = s[i]!;
    if (depth === 0 && (i === start || /[\s)]/.test(s[i - 1]!)) && stop(i)) break;
    if (ch === "'" || ch === '"' || ch === '`') {
      i = readQuoted(s, i, line).end;
      continue;
    }
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    i++;
  }
  // Trailing whitespace belongs to neither clause.
  while (i > start && /\s/.test(s[i - 1]!)) i--;
  return i;
}

/** Read a backtick-, single- or double-quoted token starting at `start`; `\x` and doubled quotes escape. */
function readQuoted(s: string, start: number, line: number): { value: string; end: number } {
  const q = s[start]!;
  let value = '';
  let i = start + 1;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      value += s[i + 1];
      i += 2;
    } else if (ch === q) {
      if (s[i + 1] === q) {
        value += q;
        i += 2;
      } else {
        return { value, end: i + 1 };
      }
    } else {
      value += ch;
      i++;
    }
  }
  throw new DatasourceFileError(line, `unclosed ${q} in SCHEMA`);
}

/** Index just past the parenthesis group that opens at `start`, respecting quotes. */
function balancedEnd(s: string, start: number, line: number): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = start; i < s.length; i++) {
    const ch = s[i]!;
    if (quote !== null) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"' || ch === '`') {
      quote = ch;
    } else if (ch === '(') {
      depth++;
    } else if (ch === ')') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new DatasourceFileError(line, "unclosed '(' in SCHEMA");
}

/**
 * INDEXES: one skip index per line, `name expr TYPE type [GRANULARITY n]`, as
 * Tinybird writes them (an `INDEX` keyword in front and a trailing comma are allowed).
 */
function parseIndexes(lines: Line[]): IndexInput[] {
  const out: IndexInput[] = [];
  for (const { n, text } of lines) {
    let t = text.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('--')) continue;
    t = t.replace(/,$/, '').trim().replace(/^INDEX\s+/i, '');
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.+)\s+TYPE\s+(.+?)(?:\s+GRANULARITY\s+(\d+))?$/is.exec(t);
    if (!m) {
      throw new DatasourceFileError(n, `INDEXES: expected "name expression TYPE type GRANULARITY n", got ${JSON.stringify(t.slice(0, 60))}`);
    }
    out.push({ name: m[1]!, expr: m[2]!.trim(), type: m[3]!.trim(), ...(m[4] !== undefined && { granularity: Number(m[4]) }) });
  }
  return out;
}

/** `index_granularity=8192, storage_policy='hot'` -> { index_granularity: 8192, storage_policy: 'hot' }. */
function parseSettings(text: string, line: number): Record<string, SettingValue> | undefined {
  const parts: string[] = [];
  let buf = '';
  let quote = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      buf += ch;
      if (ch === '\\' && i + 1 < text.length) buf += text[++i];
      else if (ch === "'") quote = false;
    } else if (ch === "'") {
      quote = true;
      buf += ch;
    } else if (ch === ',') {
      parts.push(buf);
      buf = '';
    } else {
      buf += ch;
    }
  }
  if (quote) throw new DatasourceFileError(line, "ENGINE_SETTINGS has an unclosed '");
  parts.push(buf);

  const settings: Record<string, SettingValue> = {};
  let any = false;
  for (const part of parts.map((p) => p.trim())) {
    if (part === '') continue;
    const m = /^([^=\s]+)\s*=\s*(.*)$/s.exec(part);
    if (!m || m[2] === '') throw new DatasourceFileError(line, `ENGINE_SETTINGS: expected name=value, got ${JSON.stringify(part)}`);
    const name = m[1]!;
    if (Object.hasOwn(settings, name)) throw new DatasourceFileError(line, `ENGINE_SETTINGS: ${name} is given twice`);
    settings[name] = settingValue(m[2]!);
    any = true;
  }
  return any ? settings : undefined;
}

function settingValue(raw: string): SettingValue {
  if (raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'")) return raw.slice(1, -1).replace(/\\(.)/gs, '$1');
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  // Only numbers that survive the trip through a JS number (no precision lost, no reformatting).
  if (/^-?\d+(\.\d+)?$/.test(raw) && String(Number(raw)) === raw) return Number(raw);
  return raw;
}

// ---------------------------------------------------------------------------
// Writing

/**
 * Write a spec as `.datasource` text. `parseDatasourceFile` of the result gives
 * back the same spec (the name comes from the file name, so it is not
 * written). Throws an Error listing the fields the format has no key for
 * (table, mode, csv, limits, sweepInterval, maxIdleInterval, startAfter, CSV column
 * sources, compression none, values it cannot quote).
 */
export function toDatasourceFile(spec: DataSourceSpecInput): string {
  const inexpressible: string[] = [];
  if (spec.table !== undefined && spec.table !== spec.name) inexpressible.push('table');
  if (spec.mode !== undefined && spec.mode !== 'tracked') inexpressible.push('mode');
  if (spec.csv !== undefined) inexpressible.push('csv');
  if (spec.limits !== undefined) inexpressible.push('limits');
  // Polling options of this connector; Tinybird has no keys for them.
  for (const field of ['sweepInterval', 'maxIdleInterval', 'startAfter'] as const) if (spec[field] !== undefined) inexpressible.push(field);
  if (spec.compression === 'none') inexpressible.push('compression none');
  for (const field of ['connection', 'bucketUri', 'schedule'] as const) {
    const v = spec[field];
    if (v === undefined) continue;
    if (/[\r\n]/.test(v)) inexpressible.push(`${field} (contains a line break)`);
    else if (plainValue(v) === undefined) inexpressible.push(`${field} (contains #, ' and ")`);
  }
  const format = spec.format ?? 'auto';
  const inferred = impliedFormat(spec.bucketUri, spec.columns);
  const columnLines: { body: string; comment: string }[] = [];
  spec.columns?.forEach((c, i) => {
    let path = c.path;
    if (c.source !== undefined) {
      // Parquet reads a column by name, which a `json:$.name` path says; CSV has no way to.
      if (format !== 'parquet') inexpressible.push(`columns[${i}].source`);
      else if (c.source.includes("'")) inexpressible.push(`columns[${i}].source (contains ')`);
      else path = /^[A-Za-z_][A-Za-z0-9_]*$/.test(c.source) ? `$.${c.source}` : `$['${c.source}']`;
    }
    if (path?.includes('`')) inexpressible.push(`columns[${i}].path (contains a backtick)`);
    // A type's line breaks are only spacing: one that would not read back line by line is written on one line.
    const type = multiLine(c.type) ?? c.type.replace(/\s*\n\s*/g, ' ');
    const dflt = c.default === undefined ? undefined : multiLine(c.default);
    if (c.default !== undefined && dflt === undefined) inexpressible.push(`columns[${i}].default (blank or comment lines)`);
    const clauses = [
      quoteIdent(c.name),
      type,
      ...(path === undefined ? [] : [`\`json:${path}\``]),
      ...(dflt === undefined ? [] : [`DEFAULT ${dflt}`]),
      ...(c.codec === undefined ? [] : [`CODEC(${c.codec})`]),
    ];
    // The connector's own comment ends the line: Tinybird reads it as a comment.
    const comment = c.from === undefined ? '' : ` -- s3ch:from=${c.from}${c.partition === undefined ? '' : ` partition=${c.partition}`}`;
    columnLines.push({ body: `    ${clauses.join(' ')}`, comment });
  });

  const sections: string[][] = [];

  if (spec.description !== undefined && spec.description.trim() !== '') {
    sections.push(['DESCRIPTION >', ...indentLines(spec.description)]);
  }

  if (columnLines.length > 0) {
    // The comma goes before a trailing comment, which runs to the end of the line.
    sections.push(['SCHEMA >', ...columnLines.map((l, i) => `${l.body}${i < columnLines.length - 1 ? ',' : ''}${l.comment}`)]);
  }

  const e = spec.engine;
  if (e !== undefined) {
    const lines: string[] = [];
    if (e.engine !== undefined) lines.push(`ENGINE "${e.engine}"`);
    const sql: [string, string | undefined][] = [
      ['ENGINE_PARTITION_KEY', e.partitionKey],
      ['ENGINE_SORTING_KEY', e.sortingKey],
      ['ENGINE_PRIMARY_KEY', e.primaryKey],
      ['ENGINE_SAMPLING_KEY', e.samplingKey],
      ['ENGINE_TTL', e.ttl],
      ['ENGINE_VER', e.ver],
      ['ENGINE_IS_DELETED', e.isDeleted],
    ];
    for (const [key, value] of sql) {
      if (value === undefined) continue;
      if (!value.includes('\n') && !value.includes('#')) lines.push(`${key} "${value}"`);
      else if (value.split('\n').slice(1).some((l) => l.trimStart().startsWith('#'))) inexpressible.push(`engine ${key} (a line starting with #)`);
      else lines.push(`${key} >`, ...indentLines(`"${value}"`));
    }
    const settings = Object.entries(e.settings ?? {});
    if (settings.length > 0) {
      const text = settings.map(([k, v]) => `${k}=${typeof v === 'string' ? `'${v}'` : String(v)}`).join(', ');
      lines.push(`ENGINE_SETTINGS "${text}"`);
    }
    if (lines.length > 0) sections.push(lines);
    if (e.indexes !== undefined && e.indexes.length > 0) {
      e.indexes.forEach((ix, i) => {
        if (/[\r\n]/.test(`${ix.expr}${ix.type}`)) inexpressible.push(`engine.indexes[${i}] (contains a line break)`);
      });
      sections.push([
        'INDEXES >',
        ...e.indexes.map((ix) => `    ${ix.name} ${ix.expr} TYPE ${ix.type}${ix.granularity === undefined ? '' : ` GRANULARITY ${ix.granularity}`}`),
      ]);
    }
  }

  if (inexpressible.length > 0) {
    throw new Error(`cannot write data source ${spec.name} as a .datasource file: it has no key for ${inexpressible.join(', ')}`);
  }

  const imports = ['IMPORT_SERVICE s3', `IMPORT_CONNECTION_NAME ${plainValue(spec.connection)}`, `IMPORT_BUCKET_URI ${plainValue(spec.bucketUri)}`];
  const suffix = spec.compression === undefined ? undefined : COMPRESSION_SUFFIX_OUT[spec.compression];
  if (format !== inferred || suffix !== undefined) imports.push(`IMPORT_FORMAT ${format}${suffix === undefined ? '' : `.${suffix}`}`);
  if (spec.schedule !== undefined) imports.push(`IMPORT_SCHEDULE ${plainValue(spec.schedule)}`);
  if (spec.since !== undefined) imports.push(`IMPORT_FROM_TIMESTAMP ${spec.since}`);
  imports.push('IMPORT_STRATEGY APPEND');
  sections.push(imports);

  return sections.map((s) => s.join('\n')).join('\n\n') + '\n';
}

function indentLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/).map((l) => (l.trim() === '' ? '' : `    ${l}`));
}

/**
 * A column clause written verbatim when every line of it reads back unchanged
 * inside SCHEMA (no blank or comment lines, no trailing spaces); undefined when not.
 */
function multiLine(text: string): string | undefined {
  const lines = text.split('\n');
  const ok = lines.every((l, i) => l === l.trimEnd() && (i === 0 || (l.trim() !== '' && !/^\s*(#|--)/.test(l))));
  return ok ? text : undefined;
}

/**
 * A single-line value, quoted only when the reader would otherwise change it
 * (a `#` would start a comment; surrounding quotes or spaces would be
 * stripped). Undefined when no quoting can carry it.
 */
function plainValue(v: string): string | undefined {
  const needsQuotes = v === '' || v === '>' || /^\s|\s$/.test(v) || /^["']/.test(v) || /["']$/.test(v) || v.includes('#');
  if (!needsQuotes) return v;
  if (!v.includes('"')) return `"${v}"`;
  if (!v.includes("'")) return `'${v}'`;
  return v.includes('#') ? undefined : `"${v}"`;
}
