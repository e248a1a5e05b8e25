import { partitionName, type ColumnSpec, type DataSourceSpec } from '../schemas/datasource.js';
import { canonicalType, parseClickHouseType, isTimeType } from '../schemas/clickhouse-type.js';
import { quoteIdent, quoteString } from '../schemas/identifiers.js';

/**
 * SQL for the import path. Rows land, as raw strings, in a Null-engine table;
 * materialized views split them: rows whose every value converts go to the
 * typed target table, the rest to `<table>_quarantine` with the reason. A third
 * view counts rows per file. ClickHouse does all parsing; JavaScript never
 * touches a row.
 */

/** Blocks remembered for insert deduplication per table (MergeTree default is 0 = off; MergeTree has no time bound). */
export const DEDUP_WINDOW = 100_000;
/**
 * The same horizon where a MergeTree becomes Replicated or Shared (ClickHouse
 * Cloud turns MergeTree into SharedMergeTree): blocks kept in Keeper (its
 * default, 10,000) and for how long (a week, not the default hour): a move
 * re-run after a killed worker comes within minutes (activities/commit.ts).
 */
export const DEDUP_SETTINGS = {
  non_replicated_deduplication_window: DEDUP_WINDOW,
  replicated_deduplication_window: 10_000,
  replicated_deduplication_window_seconds: 7 * 86_400,
} as const;
const DEDUP_SQL = Object.entries(DEDUP_SETTINGS).map(([k, v]) => `${k} = ${v}`).join(', ');
export const FILE_ROWS_TABLE = 's3ch_file_rows';
/** Quarantine keeps at most this much of a row's raw text (an oversized row is cut, and says so in its error). */
export const QUARANTINE_RAW_MAX = 1024 * 1024;

export type ResolvedFormat = 'csv' | 'ndjson' | 'parquet';

export interface TableNames {
  target: string;
  landing: string;
  /** Null table holding each row converted once, with its verdict. */
  converted: string;
  convertView: string;
  quarantine: string;
  typedView: string;
  quarantineView: string;
  rowsView: string;
}

export function tableNames(db: string, table: string): TableNames {
  const q = (t: string) => `${quoteIdent(db)}.${quoteIdent(t)}`;
  return {
    target: q(table),
    landing: q(`${table}_s3ch_landing`),
    converted: q(`${table}_s3ch_converted`),
    convertView: q(`${table}_s3ch_convert_mv`),
    quarantine: q(`${table}_quarantine`),
    typedView: q(`${table}_s3ch_typed_mv`),
    quarantineView: q(`${table}_s3ch_quarantine_mv`),
    rowsView: q(`${table}_s3ch_rows_mv`),
  };
}

const raw = (i: number) => `r${i}`;

/**
 * The raw text of column `i` in the conversion view: the landing column
 * `r<i>`, except for `from: line`, which is the `_line` every landing row
 * carries already (so the insert computes it once).
 */
function rawText(c: ColumnSpec, i: number): string {
  return c.from === 'line' ? 'toString(_line)' : raw(i);
}

/** Expression converting the raw text `rawIn` (a Nullable(String)) into the column's type, NULL when it does not convert. */
function conversion(rawIn: string, type: string): { value: string; ok: string } {
  const t = parseClickHouseType(type);
  const base = t.text.replace(/^Nullable\((.*)\)$/, '$1');
  const isString = /^(LowCardinality\()?(Nullable\()?String\)?\)?$/.test(t.text) || /^FixedString/.test(base);
  if (isString && !/^FixedString/.test(base)) {
    return { value: t.nullable ? rawIn : `ifNull(${rawIn}, '')`, ok: '1' };
  }
  // Empty text in a non-string column means "no value", not a parse error.
  const input = `nullIf(${rawIn}, '')`;
  if (/^(Array|Map|Tuple)\b/.test(base)) {
    // Composite types cannot be Nullable, so the non-throwing cast goes
    // through a Variant (which can be NULL) and the value is taken back out.
    const variant = `Variant(${base})`;
    const converted = `accurateCastOrNull(${input}, ${quoteString(variant)})`;
    if (/\bDecimal/.test(base)) {
      // A cast from text into a Variant infers the text's type first, and inference never gives a Decimal
      // (`[0.01]` infers Array(Float64)): the shape is checked with every Decimal as Float64, and the value
      // cast from text that passed that check.
      const shadow = `Variant(${base.replace(/\bDecimal(32|64|128|256)?\([^)]*\)/g, 'Float64')})`;
      const ok = `(${input} IS NULL OR accurateCastOrNull(${input}, ${quoteString(shadow)}) IS NOT NULL)`;
      return { value: `CAST(if(${ok}, ifNull(${input}, toString(defaultValueOfTypeName(${quoteString(base)}))), toString(defaultValueOfTypeName(${quoteString(base)}))), ${quoteString(base)})`, ok };
    }
    return { value: `variantElement(${converted}, ${quoteString(base)})`, ok: `(${input} IS NULL OR ${converted} IS NOT NULL)` };
  }
  let converted: string;
  if (isTimeType(t.base)) converted = timeConversion(input, base, t.base);
  else if (/^U?Int\d+$/.test(t.base)) {
    // Booleans written as true/false (Parquet, JSON, many CSV writers) are 1/0 in an integer column.
    // Looked for only where the text is no number (`if` evaluates a branch for its rows only), so
    // clean numbers pay nothing for it.
    const number = `accurateCastOrNull(${input}, ${quoteString(base)})`;
    converted = `if(isNull(${number}), accurateCastOrNull(multiIf(lower(${input}) = 'true', '1', lower(${input}) = 'false', '0', NULL), ${quoteString(base)}), ${number})`;
  } else if (t.base === 'Float32') {
    // A finite value too large for Float32 would become inf: it does not fit, so it is quarantined.
    converted = `if(isFinite(toFloat64OrNull(${input})) AND NOT isFinite(accurateCastOrNull(${input}, 'Float32')), NULL, accurateCastOrNull(${input}, 'Float32'))`;
  } else if (/^Enum(8|16)$/.test(t.base) && /=\s*-?\d/.test(base)) {
    // A name (or number) the Enum lacks makes the cast throw, failing the whole file: it is looked up
    // first, and only a member is cast. The names are the type's own literals, already quoted.
    const items = [...base.matchAll(/('(?:[^'\\]|\\.)*')\s*=\s*(-?\d+)/g)];
    const names = items.map((m) => m[1]!).join(', ');
    const numbers = items.map((m) => m[2]!).join(', ');
    const n = `toInt64OrNull(${input})`;
    converted = `multiIf(${input} IN (${names}), CAST(if(${input} IN (${names}), ${input}, ${items[0]![1]}), ${quoteString(base)}), ${n} IN (${numbers}), CAST(if(${n} IN (${numbers}), ${n}, ${items[0]![2]}), ${quoteString(base)}), NULL)`;
  } else converted = `accurateCastOrNull(${input}, ${quoteString(base)})`;
  // A value that is absent takes the column's default: for Date32 that is 1970-01-01 (what an omitted
  // field gets), though defaultValueOfTypeName('Date32') says 1900-01-01.
  const absent = t.base === 'Date32' ? `CAST(toDate32(0), ${quoteString(base)})` : `defaultValueOfTypeName(${quoteString(base)})`;
  const value = t.nullable ? converted : `ifNull(${converted}, ${absent})`;
  return { value, ok: `(${input} IS NULL OR ${converted} IS NOT NULL)` };
}

/**
 * Whether a column type is read from NDJSON's JSON by jsonConversion: an
 * Array, Map or Tuple, and Bool, which JSONEachRow reads from `true`/`false`
 * and numbers but not from a string (`"true"`), and the unquoted text could
 * not tell which it was.
 */
export function readsJsonValue(type: string): boolean {
  return /^(Array|Map|Tuple)\(/.test(type) || /^(Nullable\()?Bool\)?$/.test(type);
}

/** The top-level arguments of a type's parentheses (`Map(String, Array(Int8))` -> `String`, `Array(Int8)`), quotes respected. */
function typeArgs(type: string): string[] {
  const inner = type.slice(type.indexOf('(') + 1, -1);
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '`' || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(inner.slice(start).trim());
  return out;
}

/** A Tuple element: `name Type` (a named tuple) or `Type`. */
function tupleElement(arg: string): { name: string | null; type: string } {
  const m = /^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(.+)$/s.exec(arg);
  if (!m) return { name: null, type: arg };
  const name = m[1]!.startsWith('`') ? m[1]!.slice(1, -1).replace(/\\(.)/g, '$1') : m[1]!;
  return { name, type: m[2]! };
}

/**
 * JSON text -> a column type, as ClickHouse's JSONEachRow reads it, for
 * NDJSON's Array, Map, Tuple and Bool columns: `j` is an expression of the
 * value's JSON text (never NULL; JSON `null` is 'null'). An array is a
 * JSON array; a Map a JSON object (keys read as the key type); an unnamed
 * Tuple a JSON array of exactly its length; a named Tuple a JSON object by
 * element name (missing elements take their default, unknown ones are
 * ignored). `null`, anywhere, is NULL in a Nullable and the default
 * otherwise. Every element converts as the same value would in a column of
 * the element's type, so `[1, "x"]` into Array(Int64) is refused, like
 * JSONEachRow does, instead of becoming `[1, 0]`.
 *
 * ClickHouse's own cast from text (`accurateCastOrNull`) reads its text form
 * (`['a','b']`), which JSON is not; JSONExtract and the JSON type read JSON
 * but turn what does not fit into defaults; so the value is taken apart
 * here, and the checks say where it does not fit.
 */
function jsonConversion(j: string, type: string, depth: number): { value: string; ok: string } {
  const isNull = `${j} = 'null'`;
  if (/^Array\(/.test(type)) {
    const e = `e${depth}`;
    const item = jsonConversion(e, typeArgs(type)[0]!, depth + 1);
    const items = `JSONExtractArrayRaw(${j})`;
    const all = item.ok === '1' ? '' : ` AND arrayAll(${e} -> ${item.ok}, ${items})`;
    return { value: `arrayMap(${e} -> ${item.value}, ${items})`, ok: `(${isNull} OR (JSONType(${j}) = 'Array'${all}))` };
  }
  if (/^Map\(/.test(type)) {
    const [keyType, valueType] = typeArgs(type) as [string, string];
    const kv = `kv${depth}`;
    const key = conversion(`${kv}.1`, keyType);
    const val = jsonConversion(`${kv}.2`, valueType, depth + 1);
    const pairs = `JSONExtractKeysAndValuesRaw(${j})`;
    const checks = [key.ok, val.ok].filter((c) => c !== '1');
    const all = checks.length ? ` AND arrayAll(${kv} -> ${checks.join(' AND ')}, ${pairs})` : '';
    return {
      value: `mapFromArrays(arrayMap(${kv} -> ${key.value}, ${pairs}), arrayMap(${kv} -> ${val.value}, ${pairs}))`,
      ok: `(${isNull} OR (JSONType(${j}) = 'Object'${all}))`,
    };
  }
  if (/^Tuple\(/.test(type)) {
    const elements = typeArgs(type).map(tupleElement);
    const named = elements.every((el) => el.name !== null);
    // An element the JSON lacks is `null` here: its default (a named tuple's missing key, or the whole tuple null).
    const at = (el: { name: string | null }, k: number) =>
      named
        ? `ifNull(nullIf(arrayFirst(t${depth} -> t${depth}.1 = ${quoteString(el.name!)}, JSONExtractKeysAndValuesRaw(${j})).2, ''), 'null')`
        : `ifNull(nullIf(JSONExtractArrayRaw(${j})[${k + 1}], ''), 'null')`;
    const convs = elements.map((el, k) => jsonConversion(at(el, k), el.type, depth + 1));
    const shape = named ? `JSONType(${j}) = 'Object'` : `JSONType(${j}) = 'Array' AND length(JSONExtractArrayRaw(${j})) = ${elements.length}`;
    const checks = convs.map((c) => c.ok).filter((c) => c !== '1');
    return {
      value: `tuple(${convs.map((c) => c.value).join(', ')})`,
      ok: `(${isNull} OR (${[shape, ...checks].join(' AND ')}))`,
    };
  }
  // A scalar: its text as the same value has at the top level of a line (strings unquoted, JSON null is NULL).
  const scalar = conversion(`multiIf(${isNull}, NULL, JSONType(${j}) = 'String', JSONExtractString(${j}), ${j})`, type);
  if (parseClickHouseType(type).base !== 'Bool') return scalar;
  return { value: scalar.value, ok: `(${scalar.ok} AND (${isNull} OR JSONType(${j}) != 'String'))` };
}

/** What an NDJSON value that jsonConversion refuses lands as: text that no Array, Map, Tuple or Bool reads. */
const NOT_CONVERTIBLE = "'<JSON value that does not convert>'";

/**
 * An NDJSON Array, Map, Tuple or Bool value, from its JSON text `json` (NULL when
 * absent or null) to the column's text form, which the conversion view
 * reads as every format's text: the value as jsonConversion reads it,
 * rendered by ClickHouse, or NOT_CONVERTIBLE (quarantined there with the
 * column and reason). The conversion views are one per data source,
 * whatever format each file has, so JSON is read here, where the format is known.
 */
function jsonAsText(json: string, type: string): string {
  const j = jsonConversion(`assumeNotNull(${json})`, type, 0);
  return `multiIf(${json} IS NULL, NULL, ${j.ok}, toString(${j.value}), ${NOT_CONVERTIBLE})`;
}

/** Ranges ClickHouse can store; a value outside is quarantined instead of wrapping around. */
const TIME_RANGES: Record<string, [string, string]> = {
  Date: ['1970-01-01 00:00:00', '2149-06-06 23:59:59'],
  Date32: ['1900-01-01 00:00:00', '2299-12-31 23:59:59'],
  DateTime: ['1970-01-01 00:00:00', '2106-02-07 06:28:15'],
  DateTime64: ['1900-01-01 00:00:00', '2299-12-31 23:59:59'],
};

/**
 * Text -> time: parsed in the column's own time zone (text without an offset
 * means local time there, as everywhere in ClickHouse), at the column's
 * precision, and range-checked, because a plain cast wraps out-of-range dates.
 */
function timeConversion(input: string, type: string, base: string): string {
  const tz = /'([^']+)'/.exec(type)?.[1] ?? 'UTC';
  const precision = base === 'DateTime64' ? Number(/DateTime64\((\d+)/.exec(type)?.[1] ?? 3) : 0;
  // Parse at scale >= 3: at scale 0 the parser clamps dates before 1970 to the epoch.
  const scale = Math.max(precision, 3);
  const parsed = `parseDateTime64BestEffortOrNull(${input}, ${scale}, ${quoteString(tz)})`;
  const [lo, hiRange] = TIME_RANGES[base]!;
  // Bounds at the parse scale (mixed scales would widen to 9 and overflow past 2262).
  // The last second of the range includes its fractions (23:59:59.999 at scale 3).
  const hi = scale >= 9 && hiRange > '2262-04-11 23:47:16' ? '2262-04-11 23:47:16' : `${hiRange}.${'9'.repeat(scale)}`;
  const inRange = `${parsed} BETWEEN toDateTime64(${quoteString(lo)}, ${scale}, ${quoteString(tz)}) AND toDateTime64(${quoteString(hi)}, ${scale}, ${quoteString(tz)})`;
  // Explicit conversions: accurateCastOrNull from a pre-1970 DateTime64 to a date clamps instead of converting.
  const convert =
    base === 'Date' ? `toDate(${parsed})` :
    base === 'Date32' ? `toDate32(${parsed})` :
    base === 'DateTime' ? `toDateTime(${parsed}, ${quoteString(tz)})` :
    `toDateTime64(${parsed}, ${precision}, ${quoteString(tz)})`;
  return `if(${inRange}, ${convert}, NULL)`;
}

export interface ImportPlan {
  names: TableNames;
  format: ResolvedFormat;
  /** DDL, in order, that makes the import path exist (idempotent). */
  create: string[];
  /** `INSERT INTO landing (...)`: the statement's head, before its SETTINGS. */
  insertInto: string;
  /**
   * The landing columns computed from a source's columns (`line` for NDJSON,
   * the structure's names otherwise) and, for columns with `from`, from the
   * object (query parameters `key`, `fileName`, `etag`, `size`,
   * `lastModified`: see ImportParams), before the `_file`, `_etag` and
   * `_line` values the import statement appends.
   */
  select: string;
  inputFormat: string;
  structure: string;
  settings: Record<string, string | number>;
  /** The same conversion on one import attempt's own tables (see activities/commit.ts). */
  stage(names: StageNames): StagePlan;
}

/**
 * One import attempt's tables: a Null landing table and a view converting
 * its rows into `stage`, a MergeTree of the converted rows with their
 * verdicts. Nothing else reads or writes them, so an insert left running by
 * a cancelled or killed attempt writes nowhere that matters.
 */
export interface StageNames {
  landing: string;
  view: string;
  stage: string;
}

export interface StagePlan {
  /** DDL, in order, making the attempt's tables. */
  create: string[];
  /** `INSERT INTO <attempt landing> (...)`, as ImportPlan.insertInto. */
  insertInto: string;
  /** The move of the staged good rows into the target, as `INSERT INTO target (...)` and its SELECT (rows in file and line order). */
  moveRows: { insertInto: string; select: string };
  /** The move of the staged bad rows into the quarantine table. */
  moveQuarantine: { insertInto: string; select: string };
  /** Rows and quarantined rows per staged file version (`file`, `etag`, `rows`, `quarantined`). */
  counts: string;
}

/**
 * How a format's rows are read: `values` has one expression per column given
 * (the file's content columns, in order), `tail` the `_row_error` and
 * `_raw_line` values.
 */
function landingSelect(spec: DataSourceSpec, columns: ColumnSpec[], format: ResolvedFormat): { values: string[]; tail: string; structure: string; inputFormat: string; settings: Record<string, string | number> } {
  if (format === 'ndjson') {
    // One line at a time as text, values picked natively: this is what makes
    // `json:$.a.b` columns, nested objects and invalid lines work without a
    // JavaScript parser. Top-level keys (the usual case) come from one parse
    // of the line shared by every such column (see ndjsonValues).
    const types = columns.map((c) => parseClickHouseType(c.type).text);
    const read = ndjsonValues(columns.map((c) => c.path ?? `$.${c.name}`), types.map(readsJsonValue));
    return {
      structure: 'line String',
      inputFormat: 'LineAsString',
      values: read.values.map((v, i) => (readsJsonValue(types[i]!) ? jsonAsText(v, types[i]!) : v)),
      // A line of valid JSON that is no object (an array, a string, a number) has no keys: loading it
      // would add a row of defaults, so it is quarantined and says why.
      tail: `multiIf(NOT (${read.valid}), 'invalid JSON', NOT ${read.isObject}, 'not a JSON object', '') AS _row_error, line AS _raw_line`,
      settings: {},
    };
  }
  const sources = columns.map((c) => c.source ?? c.name);
  const structure = sources.map((s, i) => `${quoteIdent(spec.format === 'csv' && spec.csv?.header === false ? `c${i + 1}` : s)} Nullable(String)`).join(', ');
  if (format === 'parquet') {
    // Parquet is typed: ClickHouse reads each column as the declared type
    // (missing columns read as NULL), then renders it as text so the same
    // conversion and quarantine views serve every format.
    const typed = columns.map((c) => `${quoteIdent(c.source ?? c.name)} ${parquetReadType(c.type)}`).join(', ');
    const values = columns.map((c) => `toString(${quoteIdent(c.source ?? c.name)})`);
    return {
      structure: typed,
      inputFormat: 'Parquet',
      values,
      tail: `${noValueCheck(values)} AS _row_error, '' AS _raw_line`,
      settings: { input_format_parquet_allow_missing_columns: 1 },
    };
  }
  const csv = spec.csv ?? { delimiter: ',', header: true, skipLines: 0, quote: '"' as const };
  const names = csv.header ? sources : sources.map((_, i) => `c${i + 1}`);
  return {
    structure,
    inputFormat: csv.header ? 'CSVWithNames' : 'CSV',
    values: names.map((s) => quoteIdent(s)),
    tail: `${noValueCheck(names.map((s) => quoteIdent(s)))} AS _row_error, '' AS _raw_line`,
    settings: {
      format_csv_delimiter: csv.delimiter,
      input_format_csv_skip_first_lines: csv.skipLines,
      format_csv_allow_single_quotes: csv.quote === "'" ? 1 : 0,
      format_csv_allow_double_quotes: csv.quote === '"' ? 1 : 0,
      // Header names map columns; columns a file lacks take their default, extra ones are ignored.
      input_format_with_names_use_header: 1,
      input_format_skip_unknown_fields: 1,
      input_format_csv_allow_variable_number_of_columns: 1,
    },
  };
}

/**
 * A row in which no declared column has a value is not silently loaded as
 * defaults: it usually means the header names none of the columns (another
 * encoding, another delimiter, another file), so it is quarantined with why.
 */
function noValueCheck(values: string[]): string {
  if (values.length === 0) return "''";
  return `if(${values.map((v) => `isNull(${v})`).join(' AND ')}, 'no declared column has a value in this row: does the file\\'s header name the columns (delimiter, encoding)?', '')`;
}

/**
 * The type a Parquet column is read as. Scalars are read as text, so the same
 * checked conversion as CSV decides (a value that does not fit the declared
 * type is quarantined, never silently changed by the Parquet reader); times
 * are read as wide time types in the declared zone so the instant is kept;
 * composites are read as declared.
 */
export function parquetReadType(type: string): string {
  const t = parseClickHouseType(type);
  const inner = t.text.replace(/^LowCardinality\((.*)\)$/, '$1').replace(/^Nullable\((.*)\)$/, '$1');
  if (/^(Array|Map|Tuple|JSON|Dynamic)\b/.test(inner)) return inner;
  // Addresses are stored as numbers (IPv4 as UInt32) or 16 bytes (IPv6) by ClickHouse's writer, and as
  // text by others: ClickHouse's reader reads all of them, the text of the number or the bytes would not.
  if (t.base === 'IPv4' || t.base === 'IPv6') return `Nullable(${t.base})`;
  if (t.base === 'Date' || t.base === 'Date32') return 'Nullable(Date32)';
  if (t.base === 'DateTime' || t.base === 'DateTime64') {
    // DateTime64 at its declared precision, as ClickHouse's Parquet reader reads into the column;
    // DateTime at microseconds, so a time just before 1970 is not truncated into range. Both wide enough
    // for the range check (DateTime64(9) would overflow on dates past 2262 and fail the file).
    const tz = /'([^']+)'/.exec(inner)?.[1] ?? 'UTC';
    const precision = t.base === 'DateTime64' ? Number(/DateTime64\((\d+)/.exec(inner)?.[1] ?? 3) : 6;
    return `Nullable(DateTime64(${precision}, ${quoteString(tz)}))`;
  }
  return 'Nullable(String)';
}

/** The line's top-level keys and raw values, parsed once per line however many columns read them. */
const LINE_KEYS_AND_VALUES = 'JSONExtractKeysAndValuesRaw(line)';

/** The key of a JSONPath naming one top-level key (`$.a`, `$['a.b']`), else null. */
export function topLevelKey(path: string): string | null {
  const m = /^\$(?:\.([^.[\]]+)|\['([^']+)'\])$/.exec(path);
  return m ? (m[1] ?? m[2]!) : null;
}

/**
 * A top-level key's value as jsonPathExtract gives it (strings unquoted,
 * objects and arrays as JSON text, NULL when absent or null), from the
 * line's parsed keys and values; the first of duplicate keys, as JSONPath.
 */
function topLevelValue(key: string, rawJson = false): string {
  const raw = `arrayFirst(kv -> kv.1 = ${quoteString(key)}, ${LINE_KEYS_AND_VALUES}).2`;
  if (rawJson) return `nullIf(nullIf(${raw}, ''), 'null')`;
  return `multiIf(${raw} IN ('', 'null'), NULL, startsWith(${raw}, '"'), JSONExtractString(${raw}), ${raw})`;
}

/**
 * The text of NDJSON columns at `paths` in the line, each as jsonPathExtract
 * gives it (strings unquoted, numbers as ClickHouse renders them, objects
 * and arrays as JSON text, NULL when absent or null; the first of duplicate
 * keys), `valid`, the condition that the line is JSON, and `isObject`, that
 * it starts as an object does (with `valid`: that it is one).
 *
 * Top-level keys are read by one JSONExtract of the line into a named Tuple
 * of strings, which matches keys by name in one pass (2.4x faster than
 * parsing the line into its keys and raw values, 0.3 s against 0.73 s per
 * million six-key lines on one core). JSONExtract reads a JSON array into a
 * Tuple by position, so only a line that is an object is read that way.
 * Keys a Tuple element cannot be named (a backtick, a backslash) share the
 * parse into keys and raw values; other paths are read by JSONPath.
 * `rawJson[i]`: path i is read as its JSON text, strings quoted (the
 * columns readsJsonValue takes apart), from the shared parse into keys and
 * raw values for a top-level key.
 */
export function ndjsonValues(paths: string[], rawJson: boolean[] = []): { values: string[]; valid: string; isObject: string } {
  const keys = paths.map(topLevelKey);
  const named = [...new Set(keys.filter((k, i): k is string => k !== null && !rawJson[i] && !/[`\\]/.test(k)))];
  // An object's line starts with '{', after any JSON whitespace (the regex only for the rare line
  // that does not); any other line is read as '' (no keys). The guard is on the input, not on each
  // value: a value under `if` would run the extraction again for every column (short-circuit
  // evaluation does not share it).
  const isObject = `(startsWith(line, '{') OR match(line, ${quoteString('^[ \\t\\n\\r]*\\{')}))`;
  const tuple = `JSONExtract(if(${isObject}, line, ''), ${quoteString(`Tuple(${named.map((k) => `\`${k}\` Nullable(String)`).join(', ')})`)})`;
  const values = paths.map((p, i) => {
    const key = keys[i];
    if (key === null || key === undefined) return jsonPathExtract(p, rawJson[i]);
    if (rawJson[i]) return topLevelValue(key, true);
    return named.includes(key) ? `tupleElement(${tuple}, ${quoteString(key)})` : topLevelValue(key);
  });
  // A line with keys parsed is valid JSON: only the others are checked on their own.
  const parsed = keys.some((k, i) => k !== null && (rawJson[i] || !named.includes(k)));
  return { values, valid: `${parsed ? `notEmpty(${LINE_KEYS_AND_VALUES}) OR ` : ''}isValidJSON(line)`, isObject };
}

/**
 * Translate a JSONPath (`$.a.b[0]`, `$['key.with.dots']`, `$.items[:]`,
 * `$.items[:].id`) into a native JSON extraction returning Nullable(String):
 * strings unquoted, objects and arrays as JSON text. `[:]` maps the rest of
 * the path over every element of the array, giving a JSON array that the
 * column's Array type is read from.
 */
export function jsonPathExtract(path: string, rawJson = false): string {
  // Each segment is a JSONExtract argument (a quoted key or a 1-based index), or null for `[:]`.
  const segments: (string | null)[] = [];
  const re = /\.([^.[\]]+)|\[(\d+)\]|\[(:)\]|\.?\['([^']+)'\]/g;
  for (const m of path.slice(1).matchAll(re)) {
    if (m[1] !== undefined) segments.push(quoteString(m[1]));
    else if (m[2] !== undefined) segments.push(String(Number(m[2]) + 1)); // ClickHouse JSON indices are 1-based
    else if (m[3] !== undefined) segments.push(null);
    else if (m[4] !== undefined) segments.push(quoteString(m[4]));
  }
  const rawAt = (json: string, parts: string[]) => `JSONExtractRaw(${[json, ...parts].join(', ')})`;
  /** JSON text of `segments` applied to the JSON text `json` ('' when absent); element arrays are built depth by depth. */
  const extract = (json: string, rest: (string | null)[], depth: number): string => {
    const whole = rest.indexOf(null);
    if (whole === -1) return rawAt(json, rest as string[]);
    const head = rest.slice(0, whole) as string[];
    const tail = rest.slice(whole + 1);
    if (tail.length === 0) return rawAt(json, head);
    const e = `e${depth}`;
    // A missing field of an element is JSON null, so the array keeps one entry per element.
    const item = `ifNull(nullIf(${extract(e, tail, depth + 1)}, ''), 'null')`;
    const args = [json, ...head].join(', ');
    return `if(JSONType(${args}) = 'Array', concat('[', arrayStringConcat(arrayMap(${e} -> ${item}, JSONExtractArrayRaw(${args})), ','), ']'), '')`;
  };
  if (segments.includes(null)) {
    return `nullIf(nullIf(${extract('line', segments, 0)}, ''), 'null')`;
  }
  const args = ['line', ...(segments as string[])].join(', ');
  const text = `JSONExtractRaw(${args})`;
  if (rawJson) return `nullIf(nullIf(${text}, ''), 'null')`;
  return `multiIf(${text} IN ('', 'null'), NULL, JSONType(${args}) = 'String', JSONExtractString(${args}), ${text})`;
}

/**
 * The raw text of a column that takes its value from the object, in the
 * insert's SELECT: query parameters the activity fills from the file it was
 * given (the ledger's own identity of the file), and for a hive partition
 * the `name=value` folder of the key, percent-decoded as Hive and Spark
 * escape values; NULL when the key has no such folder, its value is empty or
 * Hive's NULL (`__HIVE_DEFAULT_PARTITION__`). `line` is not here: the
 * conversion view reads `_line`.
 */
function objectValue(c: ColumnSpec): string {
  switch (c.from) {
    case 'key':
      return '{key:String}';
    case 'file':
      return '{fileName:String}';
    case 'etag':
      return '{etag:String}';
    case 'size':
      return '{size:String}';
    case 'lastModified':
      return '{lastModified:String}';
    case 'hive': {
      // Only folders count (a '/' must follow), and the name is literal text in the regex.
      const re = quoteString(`(?:^|/)${partitionName(c).replace(/[\\.+*?()|[\]{}^$]/g, '\\$&')}=([^/]*)/`);
      return `if(match({key:String}, ${re}), nullIf(nullIf(decodeURLComponent(extract({key:String}, ${re})), ''), '__HIVE_DEFAULT_PARTITION__'), NULL)`;
    }
    default:
      throw new Error(`column ${c.name}: no object value for from ${String(c.from)}`);
  }
}

/** One condition a converted row must meet, the column it is about and the reason (an SQL expression) when it does not. */
interface RowCheck {
  ok: string;
  column: string;
  reason: string;
}

export function buildImportPlan(db: string, spec: DataSourceSpec, columns: ColumnSpec[], format: ResolvedFormat, dataSource: string): ImportPlan {
  const names = tableNames(db, spec.table);
  const convs = columns.map((c, i) => conversion(rawText(c, i), c.type));
  // Columns with `from` are not in the file: its reader, the size limit and the raw text of quarantined rows leave them out.
  const content = columns.flatMap((c, i) => (c.from === undefined ? [{ c, i }] : []));
  // Rows over the size limit are quarantined (with the start of their text), never loaded.
  const maxRow = spec.limits.maxRowBytes;
  const rowBytes = `(length(_raw_line) + ${content.map(({ i }) => `length(ifNull(${raw(i)}, ''))`).join(' + ') || '0'})`;
  const sizeOk = `${rowBytes} <= ${maxRow}`;
  const checks: RowCheck[] = [];
  columns.forEach((c, i) => {
    const conv = convs[i]!;
    if (c.from === 'hive') {
      const part = partitionName(c);
      // A partition the key does not have is no value: only a Nullable column can hold that.
      if (!parseClickHouseType(c.type).nullable) {
        checks.push({ ok: `(${raw(i)} IS NOT NULL)`, column: c.name, reason: quoteString(`the key has no value for partition ${part} (a folder ${part}=<value>)`) });
      }
      if (conv.ok !== '1') checks.push({ ok: conv.ok, column: c.name, reason: `concat(${quoteString(`cannot convert to ${c.type}: ${part}=`)}, ifNull(${raw(i)}, ''), ' in the key')` });
    } else if (conv.ok !== '1') {
      checks.push({ ok: conv.ok, column: c.name, reason: quoteString(`cannot convert to ${c.type}`) });
    }
  });
  const okParts = ['_row_error = \'\'', sizeOk, ...checks.map((ch) => ch.ok)];
  const ok = okParts.map((p) => `(${p})`).join(' AND ');
  const firstFailure = (what: 'column' | 'reason') =>
    `multiIf(_row_error != '', ${what === 'column' ? "''" : '_row_error'}, NOT (${sizeOk}), ${what === 'column' ? "''" : `concat('row is ', toString(${rowBytes}), ' bytes, over the data source''s maxRowBytes of ${maxRow}')`}, ${checks
      .map((ch) => `NOT ${ch.ok}, ${what === 'column' ? quoteString(ch.column) : ch.reason}`)
      .concat(["''"])
      .join(', ')})`;
  const rawMap = content.length ? `toJSONString(map(${content.map(({ c, i }) => `${quoteString(c.name)}, ${raw(i)}`).join(', ')}))` : "'{}'";
  const rawJson = `substring(if(_raw_line != '', _raw_line, ${rawMap}), 1, ${QUARANTINE_RAW_MAX})`;

  const landingCols = [
    ...columns.map((_, i) => `${raw(i)} Nullable(String)`),
    '_row_error String',
    '_raw_line String',
    '_file String',
    '_etag String',
    '_line UInt64',
  ];
  // Each row is converted once, into a second Null table with its verdict;
  // the typed, quarantine and row-count views only filter that.
  // Columns with a DEFAULT take it where the file has no value (missing or empty, as ClickHouse's
  // own CSV reader does): the converted rows say which, and the typed view computes the default.
  const defaulted = columns.flatMap((c, i) => (c.default !== undefined ? [i] : []));
  const convertedCols = [
    ...columns.map((c, i) => `c${i} ${canonicalType(c.type)}`),
    '_s3ch_ok UInt8', '_s3ch_file String', '_s3ch_etag String', '_s3ch_line UInt64', '_s3ch_column String', '_s3ch_error String', '_s3ch_raw String',
    ...defaulted.map((i) => `_s3ch_absent${i} UInt8`),
  ];
  const absent = defaulted.map((i) => `, isNull(nullIf(${rawText(columns[i]!, i)}, '')) AS _s3ch_absent${i}`).join('');
  const engine = spec.engine;
  const target = [
    `CREATE TABLE IF NOT EXISTS ${names.target} (`,
    [
      ...columns.map((c) => `  ${quoteIdent(c.name)} ${canonicalType(c.type)}${c.default !== undefined ? ` DEFAULT ${c.default}` : ''}${c.codec !== undefined ? ` CODEC(${c.codec})` : ''}`),
      ...(engine.indexes ?? []).map((ix) => `  INDEX ${quoteIdent(ix.name)} ${ix.expr} TYPE ${ix.type}${ix.granularity !== undefined ? ` GRANULARITY ${ix.granularity}` : ''}`),
    ].join(',\n'),
    `) ENGINE = ${engine.engine}(${[engine.ver, engine.isDeleted].filter((a) => a !== undefined).join(', ')})`,
    engine.partitionKey ? `PARTITION BY ${asTuple(engine.partitionKey)}` : '',
    `ORDER BY ${engine.sortingKey ? asTuple(engine.sortingKey) : 'tuple()'}`,
    engine.primaryKey ? `PRIMARY KEY ${asTuple(engine.primaryKey)}` : '',
    engine.samplingKey ? `SAMPLE BY ${engine.samplingKey}` : '',
    engine.ttl ? `TTL ${engine.ttl}` : '',
    `SETTINGS ${mergeTreeSettings(engine.settings)}`,
  ].filter(Boolean).join('\n');

  const read = landingSelect(spec, content.map(({ c }) => c), format);
  const { structure, inputFormat, settings } = read;
  // The insert fills every landing column but those of `from: line` columns (the conversion view reads `_line`).
  const inserted = columns.flatMap((c, i) => {
    if (c.from === 'line') return [];
    const k = content.findIndex((x) => x.i === i);
    return [{ column: raw(i), value: c.from === undefined ? read.values[k]! : objectValue(c) }];
  });
  const select = [...inserted.map((x) => x.value), read.tail].join(', ');
  const landingColumnList = [...inserted.map((x) => x.column), '_row_error', '_raw_line', '_file', '_etag', '_line'].join(', ');
  const convertSelect = (from: string) => `SELECT ${convs.map((c, i) => `${c.value} AS c${i}`).join(', ')}, ${ok} AS _s3ch_ok, _file AS _s3ch_file, _etag AS _s3ch_etag, _line AS _s3ch_line, if(_s3ch_ok, '', ${firstFailure('column')}) AS _s3ch_column, if(_s3ch_ok, '', ${firstFailure('reason')}) AS _s3ch_error, if(_s3ch_ok, '', ${rawJson}) AS _s3ch_raw${absent} FROM ${from}`;
  const stage = (n: StageNames): StagePlan => {
    const typed = typedSelect(n.stage, columns);
    const inOrder = (q: string) => `ORDER BY ${q}_s3ch_file, ${q}_s3ch_line`;
    return {
      create: [
        // Sorted as the move reads it, so the move merges sorted parts instead of sorting.
        `CREATE TABLE ${n.stage} (${convertedCols.join(', ')}) ENGINE = MergeTree ORDER BY (_s3ch_file, _s3ch_line) SETTINGS non_replicated_deduplication_window = 0`,
        `CREATE TABLE ${n.landing} (${landingCols.join(', ')}) ENGINE = Null`,
        `CREATE MATERIALIZED VIEW ${n.view} TO ${n.stage} AS ${convertSelect(n.landing)}`,
      ],
      insertInto: `INSERT INTO ${n.landing} (${landingColumnList})`,
      moveRows: { insertInto: `INSERT INTO ${names.target} (${columns.map((c) => quoteIdent(c.name)).join(', ')})`, select: `${typed.select} ${inOrder(typed.q)}` },
      moveQuarantine: {
        insertInto: `INSERT INTO ${names.quarantine} (_file, _etag, _line, column, raw, error)`,
        select: `SELECT _s3ch_file, _s3ch_etag, _s3ch_line, _s3ch_column, _s3ch_raw, _s3ch_error FROM ${n.stage} WHERE NOT _s3ch_ok ${inOrder('')}`,
      },
      counts: `SELECT _s3ch_file AS file, _s3ch_etag AS etag, countIf(_s3ch_ok) AS rows, countIf(NOT _s3ch_ok) AS quarantined FROM ${n.stage} GROUP BY file, etag`,
    };
  };
  return {
    stage,
    names,
    format,
    inputFormat,
    structure,
    settings,
    create: [
      target,
      `CREATE TABLE IF NOT EXISTS ${names.quarantine} (_file String, _etag String, _line UInt64, column String, raw String, error String, _inserted_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY (_file, _line) SETTINGS ${DEDUP_SQL}`,
      `CREATE TABLE IF NOT EXISTS ${names.converted} (${convertedCols.join(', ')}) ENGINE = Null`,
      typedView(names, columns),
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${names.quarantineView} TO ${names.quarantine} AS SELECT _s3ch_file AS _file, _s3ch_etag AS _etag, _s3ch_line AS _line, _s3ch_column AS column, _s3ch_raw AS raw, _s3ch_error AS error FROM ${names.converted} WHERE NOT _s3ch_ok`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${names.rowsView} TO ${quoteIdent(db)}.${FILE_ROWS_TABLE} AS SELECT ${quoteString(dataSource)} AS datasource, _s3ch_file AS key, _s3ch_etag AS etag, count() AS rows, countIf(NOT _s3ch_ok) AS quarantined FROM ${names.converted} GROUP BY _s3ch_file, _s3ch_etag`,
      `CREATE TABLE IF NOT EXISTS ${names.landing} (${landingCols.join(', ')}) ENGINE = Null`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${names.convertView} TO ${names.converted} AS ${convertSelect(names.landing)}`,
    ],
    insertInto: `INSERT INTO ${names.landing} (${landingColumnList})`,
    select,
  };
}

/**
 * The view from the converted rows to the target table. Its SELECT names
 * each column `c<i> AS <name>`; ClickHouse resolves an identifier to an
 * alias of the same SELECT before a column, so with columns named like the
 * internal ones (`c1`, `c2`: the names inferred for a CSV without a header)
 * `c0 AS c1, c1 AS c2` would read the first column twice. There the
 * internal columns are read qualified by the table; the unqualified text is
 * kept everywhere else, so an import path that was right stays as it is.
 * A column with a DEFAULT gets it where the file had no value.
 */
function typedView(names: TableNames, columns: ColumnSpec[]): string {
  return `CREATE MATERIALIZED VIEW IF NOT EXISTS ${names.typedView} TO ${names.target} AS ${typedSelect(names.converted, columns).select}`;
}

/** The typed rows of a table of converted rows (see typedView); `q` is the qualifier its internal columns are read with. */
function typedSelect(from: string, columns: ColumnSpec[]): { select: string; q: string } {
  const internal = new Set([...columns.map((_, i) => [`c${i}`, `_s3ch_absent${i}`]).flat(), '_s3ch_ok']);
  const q = columns.some((c) => internal.has(c.name)) ? 'src.' : '';
  // A default is computed from the row's other values, as ClickHouse computes a DEFAULT: its
  // identifiers name columns, which here are this SELECT's aliases.
  const value = (c: ColumnSpec, i: number) => (c.default === undefined ? `${q}c${i}` : `if(${q}_s3ch_absent${i}, CAST((${c.default}) AS ${canonicalType(c.type)}), ${q}c${i})`);
  const select = columns.map((c, i) => `${value(c, i)} AS ${quoteIdent(c.name)}`).join(', ');
  return { select: `SELECT ${select} FROM ${from}${q ? ' AS src' : ''} WHERE ${q}_s3ch_ok`, q };
}

/** `ts, id` (as Tinybird writes keys) becomes `(ts, id)`; a single expression stays as it is. */
export function asTuple(expr: string): string {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    else if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === ',' && depth === 0) return `(${expr})`;
  }
  return expr;
}

function mergeTreeSettings(user: Record<string, string | number | boolean> | undefined): string {
  // The connector's deduplication horizon last: a re-run move rests on it, whatever the spec says.
  const settings: Record<string, string | number | boolean> = { ...user, ...DEDUP_SETTINGS };
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === 'string' ? quoteString(v) : typeof v === 'boolean' ? (v ? 1 : 0) : v}`)
    .join(', ');
}

/** DDL that removes a data source's import path; the target and quarantine tables only when asked. */
export function dropStatements(names: TableNames, dropTable: boolean): string[] {
  const out = [
    `DROP VIEW IF EXISTS ${names.convertView}`,
    `DROP TABLE IF EXISTS ${names.landing}`,
    `DROP VIEW IF EXISTS ${names.typedView}`,
    `DROP VIEW IF EXISTS ${names.quarantineView}`,
    `DROP VIEW IF EXISTS ${names.rowsView}`,
    `DROP TABLE IF EXISTS ${names.converted}`,
  ];
  if (dropTable) out.push(`DROP TABLE IF EXISTS ${names.target}`, `DROP TABLE IF EXISTS ${names.quarantine}`);
  return out;
}
