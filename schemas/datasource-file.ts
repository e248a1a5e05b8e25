/**
 * Tinybird `.datasource` files: read them into a data source spec, and write a
 * spec back out, so a Tinybird S3 connector definition can be used unchanged.
 *
 * The format, as accepted here:
 *   - A key starts at column 0, followed by whitespace and its value:
 *       ENGINE_SORTING_KEY "country, timestamp"
 *   - `KEY >` opens a block: the indented lines (tabs or spaces) that follow
 *     are its value. Blank lines may appear inside a block.
 *   - Lines starting with `#` at column 0 are comments; there are no inline
 *     comments (`#` may appear in values, e.g. in a bucket URI).
 *   - Keys are case-insensitive; CRLF, CR and LF line endings are all accepted.
 *
 * Supported keys: DESCRIPTION, SCHEMA, ENGINE, ENGINE_PARTITION_KEY,
 * ENGINE_SORTING_KEY, ENGINE_PRIMARY_KEY, ENGINE_TTL, ENGINE_SETTINGS,
 * IMPORT_SERVICE, IMPORT_CONNECTION_NAME, IMPORT_BUCKET_URI, IMPORT_SCHEDULE,
 * IMPORT_STRATEGY, IMPORT_FORMAT. Anything else is an error naming the line,
 * so nothing in a file is silently ignored.
 *
 * This module only translates; the result is validated by dataSourceSpecSchema.
 */
import { quoteIdent } from './identifiers.js';
import type { DataSourceSpecInput } from './datasource.js';

type EngineInput = NonNullable<DataSourceSpecInput['engine']>;
type EngineName = NonNullable<EngineInput['engine']>;
type SettingValue = NonNullable<EngineInput['settings']>[string];
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

const ENGINES: readonly EngineName[] = ['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree'];
const IMPORT_SERVICES = ['s3', 's3_iamrole'] as const;

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

const SUPPORTED_KEYS = new Set([
  'DESCRIPTION',
  'SCHEMA',
  'ENGINE',
  'ENGINE_PARTITION_KEY',
  'ENGINE_SORTING_KEY',
  'ENGINE_PRIMARY_KEY',
  'ENGINE_TTL',
  'ENGINE_SETTINGS',
  'IMPORT_SERVICE',
  'IMPORT_CONNECTION_NAME',
  'IMPORT_BUCKET_URI',
  'IMPORT_SCHEDULE',
  'IMPORT_STRATEGY',
  'IMPORT_FORMAT',
]);

/** Why a known Tinybird key is rejected; the reason is appended to "unsupported key X". */
function unsupportedKeyReason(key: string): string {
  const hint = ((): string | undefined => {
    if (key === 'TOKEN') return 'tokens are a Tinybird feature with no equivalent here; remove the line';
    if (key.startsWith('KAFKA_')) return 'only S3 imports are supported';
    if (key === 'FORWARD_QUERY') return 'schema migrations with a forward query are not supported';
    if (key === 'INDEXES') return 'data-skipping indexes are not supported yet';
    if (key === 'IMPORT_FROM_TIMESTAMP') {
      return 'not supported: the connector imports every file matching IMPORT_BUCKET_URI and remembers which it has loaded';
    }
    if (key.startsWith('ENGINE_')) return 'only ENGINE_PARTITION_KEY, ENGINE_SORTING_KEY, ENGINE_PRIMARY_KEY, ENGINE_TTL and ENGINE_SETTINGS are supported';
    if (key.startsWith('IMPORT_')) return 'only IMPORT_SERVICE, IMPORT_CONNECTION_NAME, IMPORT_BUCKET_URI, IMPORT_SCHEDULE, IMPORT_STRATEGY and IMPORT_FORMAT are supported';
    return undefined;
  })();
  return hint ? `unsupported key ${key}: ${hint}` : `unsupported key ${key}`;
}

/** Column modifiers that ClickHouse allows after the type but the spec cannot express. */
const COLUMN_MODIFIERS = new Set(['DEFAULT', 'CODEC', 'MATERIALIZED', 'ALIAS', 'EPHEMERAL', 'COMMENT', 'TTL', 'NULL', 'NOT', 'SETTINGS', 'STATISTICS']);

interface Line {
  n: number;
  text: string;
}

interface Entry {
  key: string;
  line: number;
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
  const entries = scanEntries(text);

  let description: string | undefined;
  let columns: ColumnInput[] | undefined;
  const engine: EngineInput = {};
  let connection: string | undefined;
  let bucketUri: string | undefined;
  let schedule: string | undefined;
  let format: Format | undefined;
  let compression: Compression | undefined;

  for (const entry of entries) {
    const { key, line } = entry;
    switch (key) {
      case 'DESCRIPTION': {
        const d = entry.block ? blockText(entry.block, { keepComments: true }) : stripDoubleQuotes(entry.value);
        description = d.trim() === '' ? undefined : d;
        break;
      }
      case 'SCHEMA': {
        const lines = entry.block ?? (entry.value.trim() === '' ? [] : [{ n: line, text: entry.value }]);
        columns = splitColumnDefinitions(lines).map((def) => parseColumn(def.line, def.text));
        if (columns.length === 0) throw new DatasourceFileError(line, 'SCHEMA has no columns');
        break;
      }
      case 'ENGINE': {
        const v = stripQuotes(scalar(entry)).trim().replace(/\(\s*\)$/, '');
        if (v === '') break;
        const found = ENGINES.find((e) => e === v);
        if (!found) throw new DatasourceFileError(line, `ENGINE ${v} is not supported; use one of ${ENGINES.join(', ')}`);
        engine.engine = found;
        break;
      }
      case 'ENGINE_PARTITION_KEY':
      case 'ENGINE_SORTING_KEY':
      case 'ENGINE_PRIMARY_KEY':
      case 'ENGINE_TTL': {
        const v = stripDoubleQuotes(scalar(entry));
        if (v.trim() === '') break;
        const field = ({ ENGINE_PARTITION_KEY: 'partitionKey', ENGINE_SORTING_KEY: 'sortingKey', ENGINE_PRIMARY_KEY: 'primaryKey', ENGINE_TTL: 'ttl' } as const)[key];
        engine[field] = v;
        break;
      }
      case 'ENGINE_SETTINGS': {
        const settings = parseSettings(stripDoubleQuotes(scalar(entry)), line);
        if (settings) engine.settings = settings;
        break;
      }
      case 'IMPORT_SERVICE': {
        const v = stripQuotes(scalar(entry)).trim();
        if (!(IMPORT_SERVICES as readonly string[]).includes(v.toLowerCase())) {
          throw new DatasourceFileError(line, `IMPORT_SERVICE ${v === '' ? '(empty)' : v} is not supported; allowed values: ${IMPORT_SERVICES.join(', ')}`);
        }
        break;
      }
      case 'IMPORT_CONNECTION_NAME':
        connection = nonEmpty(stripQuotes(scalar(entry)).trim());
        break;
      case 'IMPORT_BUCKET_URI':
        bucketUri = nonEmpty(stripQuotes(scalar(entry)).trim());
        break;
      case 'IMPORT_SCHEDULE':
        schedule = nonEmpty(stripQuotes(scalar(entry)).trim());
        break;
      case 'IMPORT_STRATEGY': {
        const v = stripQuotes(scalar(entry)).trim();
        if (v === '' || v.toUpperCase() === 'APPEND') break;
        if (v.toUpperCase() === 'REPLACE') {
          throw new DatasourceFileError(line, 'IMPORT_STRATEGY REPLACE is not supported; only APPEND is (new files are appended, existing rows are kept)');
        }
        throw new DatasourceFileError(line, `IMPORT_STRATEGY ${v} is not supported; only APPEND is`);
      }
      case 'IMPORT_FORMAT': {
        const v = stripQuotes(scalar(entry)).trim().toLowerCase();
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
        // scanEntries only lets supported keys through.
        throw new DatasourceFileError(line, unsupportedKeyReason(key));
    }
  }

  if (connection === undefined) {
    throw new DatasourceFileError(0, 'IMPORT_CONNECTION_NAME is missing; it names the connection to read the bucket with');
  }
  if (bucketUri === undefined) {
    throw new DatasourceFileError(0, 'IMPORT_BUCKET_URI is missing; it says which files to import, e.g. s3://my-bucket/events/*.csv');
  }

  const spec: DataSourceSpecInput = {
    name: opts.name,
    ...(description !== undefined && { description }),
    connection,
    bucketUri,
    format: format ?? (columns?.some((c) => c.path !== undefined) ? 'ndjson' : 'auto'),
    ...(compression !== undefined && { compression }),
    ...(schedule !== undefined && { schedule }),
    ...(columns !== undefined && { columns }),
    ...(Object.keys(engine).length > 0 && { engine }),
  };
  return spec;
}

/** Split the file into key entries, rejecting unknown keys and stray lines as they are met. */
function scanEntries(text: string): Entry[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const entries: Entry[] = [];
  const firstLine = new Map<string, number>();
  let open: Entry | null = null;

  lines.forEach((raw, i) => {
    const n = i + 1;
    if (raw.trim() === '') {
      open?.block?.push({ n, text: '' });
      return;
    }
    if (raw[0] === ' ' || raw[0] === '\t') {
      if (!open?.block) {
        throw new DatasourceFileError(n, 'indented line outside a block; only the lines after "KEY >" may be indented');
      }
      open.block.push({ n, text: raw.trimEnd() });
      return;
    }
    // A comment at column 0 neither ends nor joins an open block.
    if (raw.startsWith('#')) return;

    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*(>)[ \t]*|[ \t]+(.*?)[ \t]*|[ \t]*)$/.exec(raw);
    if (!m) {
      throw new DatasourceFileError(
        n,
        `expected "KEY value" or "KEY >" at the start of the line, got ${JSON.stringify(raw.slice(0, 40))}; the lines of a block must be indented`,
      );
    }
    const key = m[1]!.toUpperCase();
    if (!SUPPORTED_KEYS.has(key)) throw new DatasourceFileError(n, unsupportedKeyReason(key));
    const first = firstLine.get(key);
    if (first !== undefined) throw new DatasourceFileError(n, `${key} is given twice (first at line ${first})`);
    firstLine.set(key, n);
    const entry: Entry = { key, line: n, value: m[3] ?? '', block: m[2] ? [] : null };
    entries.push(entry);
    open = entry;
  });
  return entries;
}

/** The value of an entry that holds one piece of text: a single line, or a block joined by newlines. */
function scalar(entry: Entry): string {
  return entry.block ? blockText(entry.block, { keepComments: false }) : entry.value;
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

/** Strip one pair of surrounding double quotes. */
function stripDoubleQuotes(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

/** Strip one pair of surrounding double or single quotes (for names, URIs and keywords). */
function stripQuotes(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0]) return t.slice(1, -1);
  return t;
}

/**
 * Split a SCHEMA block into column definitions. A definition ends at a comma
 * or at the end of a line, unless a parenthesis or quote is still open (then
 * it continues on the next line). Returns each definition with its first line.
 */
function splitColumnDefinitions(lines: Line[]): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let buf = '';
  let start = 0;
  let depth = 0;
  let quote: string | null = null;
  let quoteLine = 0;
  let lastSeparator = 'start' as 'start' | 'comma' | 'eol';
  const add = (s: string, n: number) => {
    if (buf === '') start = n;
    buf += s;
  };
  const flush = (sep: 'comma' | 'eol') => {
    if (buf.trim() !== '') {
      out.push({ line: start, text: buf.trim() });
      lastSeparator = sep;
    }
    buf = '';
  };

  for (const { n, text } of lines) {
    if (quote === null && depth === 0 && (text.trim() === '' || text.trimStart().startsWith('#'))) continue;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (quote !== null) {
        add(ch, n);
        if (ch === '\\' && i + 1 < text.length) add(text[++i]!, n);
        else if (ch === quote) quote = null;
        continue;
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
        flush('comma');
        continue;
      }
      add(ch, n);
    }
    if (quote !== null || depth > 0) add('\n', n);
    else flush('eol');
  }
  if (quote !== null) throw new DatasourceFileError(quoteLine, `unclosed ${quote} in SCHEMA`);
  if (depth > 0) throw new DatasourceFileError(start, "unclosed '(' in SCHEMA");
  return out;
}

/** Parse one column definition: name, type, optional `json:$.path`. */
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
  skipSpace();
  const typeName = /^[A-Za-z_][A-Za-z0-9_]*/.exec(def.slice(pos))?.[0];
  if (typeName === undefined || COLUMN_MODIFIERS.has(typeName.toUpperCase())) {
    throw new DatasourceFileError(line, `column ${shown} has no type; write e.g. ${shown} String`);
  }
  pos += typeName.length;
  let type = typeName;
  skipSpace();
  if (def[pos] === '(') {
    const end = balancedEnd(def, pos, line);
    type += def.slice(pos, end);
    pos = end;
  }

  let path: string | undefined;
  for (;;) {
    skipSpace();
    if (pos >= def.length) break;
    const rest = def.slice(pos);
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
    const word = /^[A-Za-z_]+/.exec(rest)?.[0].toUpperCase();
    if (word !== undefined && COLUMN_MODIFIERS.has(word)) {
      const what = word === 'NULL' || word === 'NOT' ? 'NULL / NOT NULL (use Nullable(T) as the type)' : word;
      throw new DatasourceFileError(line, `${what} is not supported yet (column ${shown})`);
    }
    throw new DatasourceFileError(line, `unexpected ${JSON.stringify(rest.slice(0, 40))} after the type of column ${shown}`);
  }

  return path === undefined ? { name, type } : { name, type, path };
}

/** Read a backtick- or double-quoted token starting at `start`; `\x` and doubled quotes escape. */
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
 * back an equivalent spec (the name comes from the file name, so it is not
 * written). Throws an Error listing the fields the format has no key for
 * (table, mode, csv, limits, column sources, compression none).
 */
export function toDatasourceFile(spec: DataSourceSpecInput): string {
  const inexpressible: string[] = [];
  if (spec.table !== undefined && spec.table !== spec.name) inexpressible.push('table');
  if (spec.mode !== undefined && spec.mode !== 'tracked') inexpressible.push('mode');
  if (spec.csv !== undefined) inexpressible.push('csv');
  if (spec.limits !== undefined) inexpressible.push('limits');
  if (spec.compression === 'none') inexpressible.push('compression none');
  for (const field of ['connection', 'bucketUri', 'schedule'] as const) {
    if (/[\r\n]/.test(spec[field] ?? '')) inexpressible.push(`${field} (contains a line break)`);
  }
  spec.columns?.forEach((c, i) => {
    if (c.source !== undefined) inexpressible.push(`columns[${i}].source`);
    if (c.path?.includes('`')) inexpressible.push(`columns[${i}].path (contains a backtick)`);
  });
  if (inexpressible.length > 0) {
    throw new Error(`cannot write data source ${spec.name} as a .datasource file: it has no key for ${inexpressible.join(', ')}`);
  }

  const sections: string[][] = [];

  if (spec.description !== undefined && spec.description.trim() !== '') {
    sections.push(['DESCRIPTION >', ...indentLines(spec.description)]);
  }

  if (spec.columns !== undefined && spec.columns.length > 0) {
    const cols = spec.columns;
    sections.push([
      'SCHEMA >',
      ...cols.map((c, i) => {
        const path = c.path === undefined ? '' : ` \`json:${c.path}\``;
        return `    ${quoteIdent(c.name)} ${c.type.replace(/\s*\n\s*/g, ' ')}${path}${i < cols.length - 1 ? ',' : ''}`;
      }),
    ]);
  }

  const e = spec.engine;
  if (e !== undefined) {
    const lines: string[] = [];
    if (e.engine !== undefined) lines.push(`ENGINE "${e.engine}"`);
    const sql: [string, string | undefined][] = [
      ['ENGINE_PARTITION_KEY', e.partitionKey],
      ['ENGINE_SORTING_KEY', e.sortingKey],
      ['ENGINE_PRIMARY_KEY', e.primaryKey],
      ['ENGINE_TTL', e.ttl],
    ];
    for (const [key, value] of sql) {
      if (value === undefined) continue;
      lines.push(...(value.includes('\n') ? [`${key} >`, ...indentLines(`"${value}"`)] : [`${key} "${value}"`]));
    }
    const settings = Object.entries(e.settings ?? {});
    if (settings.length > 0) {
      const text = settings.map(([k, v]) => `${k}=${typeof v === 'string' ? `'${v}'` : String(v)}`).join(', ');
      lines.push(`ENGINE_SETTINGS "${text}"`);
    }
    if (lines.length > 0) sections.push(lines);
  }

  const imports = ['IMPORT_SERVICE s3', `IMPORT_CONNECTION_NAME ${plainValue(spec.connection)}`, `IMPORT_BUCKET_URI ${plainValue(spec.bucketUri)}`];
  const inferred: Format = spec.columns?.some((c) => c.path !== undefined) ? 'ndjson' : 'auto';
  const format = spec.format ?? 'auto';
  const suffix = spec.compression === undefined ? undefined : COMPRESSION_SUFFIX_OUT[spec.compression];
  if (format !== inferred || suffix !== undefined) imports.push(`IMPORT_FORMAT ${format}${suffix === undefined ? '' : `.${suffix}`}`);
  if (spec.schedule !== undefined) imports.push(`IMPORT_SCHEDULE ${plainValue(spec.schedule)}`);
  imports.push('IMPORT_STRATEGY APPEND');
  sections.push(imports);

  return sections.map((s) => s.join('\n')).join('\n\n') + '\n';
}

function indentLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/).map((l) => (l.trim() === '' ? '' : `    ${l}`));
}

/** A single-line value, double-quoted only when the reader would otherwise change it. */
function plainValue(v: string): string {
  const needsQuotes = v === '' || v === '>' || /^\s|\s$/.test(v) || /^["']/.test(v);
  return needsQuotes ? `"${v}"` : v;
}
