import { compareKeys } from './key-order.js';
import { z } from 'zod';
import { DATA_SOURCE_NAME, TABLE_NAME, isValidColumnName } from './identifiers.js';
import { ClickHouseTypeError, parseClickHouseType } from './clickhouse-type.js';
import { BucketUriError, parseBucketUri } from './glob.js';
import { ScheduleError, parseSchedule } from './schedule.js';
import { DurationError, MAX_IDLE_INTERVAL_MS, MAX_SWEEP_MS, MIN_IDLE_INTERVAL_MS, MIN_SWEEP_MS, parseDuration } from './polling.js';

/**
 * Most columns a data source may have: every import statement carries a
 * conversion per column, and past this ClickHouse's query size limits would
 * fail every file of the data source long after it was created.
 */
export const MAX_COLUMNS = 500;

/** Table settings the exactly-once guarantee rests on: a spec may not change them. */
export const PROTECTED_TABLE_SETTING = /deduplicat/i;

/** Defaults for per-data-source limits; each can be overridden in the spec. */
export const DEFAULT_LIMITS = {
  /** 0 = no cap per run: a backlog drains at the speed of the machine. */
  maxFilesPerRun: 0,
  concurrency: 4,
  /** 0 = no cap on file size; large files are streamed, never held in memory. */
  maxFileBytes: 0,
  maxRowBytes: 2 * 1024 * 1024,
} as const;

// SQL expressions (keys, TTL, defaults) are checked for shape here; their
// meaning is checked on ClickHouse's parse against an allow-list of pure
// functions (clickhouse/sql-guard.ts) before anything is created.
const sqlExpression = (what: string) =>
  z
    .string()
    .trim()
    .min(1, `${what} must not be empty`)
    .max(2000, `${what} is longer than 2000 characters`)
    .refine((s) => !/;|--|\/\*|\u0000/.test(s), `${what} must be a single expression (no ';' or comments)`);

/** `Delta, ZSTD(1)`: codec names, each with optional numeric arguments. */
const CODEC_LIST = /^[A-Za-z][A-Za-z0-9]*(\(\s*\d+(\s*,\s*\d+)*\s*\))?(\s*,\s*[A-Za-z][A-Za-z0-9]*(\(\s*\d+(\s*,\s*\d+)*\s*\))?)*$/;
/** `bloom_filter(0.01)`, `set(100)`, `tokenbf_v1(256, 2, 0)`: a type name with literal arguments only. */
const INDEX_TYPE = /^[A-Za-z_][A-Za-z0-9_]*(\(\s*(([A-Za-z_][A-Za-z0-9_]*\s*=\s*)?(-?\d+(\.\d+)?|'[^'\\]*')(\s*,\s*([A-Za-z_][A-Za-z0-9_]*\s*=\s*)?(-?\d+(\.\d+)?|'[^'\\]*'))*)?\s*\))?$/;

/** Where a `from` column takes its value; see columnSchema. */
export const OBJECT_VALUES = ['key', 'file', 'etag', 'size', 'lastModified', 'line', 'hive'] as const;
export type ObjectValue = (typeof OBJECT_VALUES)[number];

export const columnSchema = z
  .strictObject({
    name: z.string().refine(isValidColumnName, 'column name must be 1-256 printable characters'),
    type: z.string().superRefine((t, ctx) => {
      try {
        parseClickHouseType(t);
      } catch (e) {
        if (e instanceof ClickHouseTypeError) ctx.addIssue({ code: 'custom', message: `invalid ClickHouse type: ${e.reason}` });
        else throw e;
      }
    }),
    /** NDJSON only: JSONPath of the value, e.g. `$.user.id`, `$.items[0]`, `$.items[:].id` (that field of every element) or `$['key.with.dots']`. */
    path: z
      .string()
      .regex(/^\$(\.[^.[\]]+|\[\d+\]|\[:\]|\.?\['[^']+'\])*$/, "path must be a JSONPath like $.a.b, $.items[0], $.items[:].id or $['key']")
      .optional(),
    default: sqlExpression('default')
      .optional()
      .describe("SQL expression for the value when a file has none (the column's DEFAULT), e.g. now() or toDate(timestamp)"),
    codec: z
      .string()
      .trim()
      .regex(CODEC_LIST, "codec must be a list of codecs like 'Delta, ZSTD(1)' (the text inside CODEC(...))")
      .optional()
      .describe("Compression codecs of the column: the text inside CODEC(...), e.g. 'Delta, ZSTD(1)'"),
    /** CSV/Parquet: the source column this one reads from (defaults to `name`), for renames. */
    source: z.string().refine(isValidColumnName, 'source must be 1-256 printable characters').optional(),
    from: z
      .enum(OBJECT_VALUES)
      .optional()
      .describe(
        "Take the value from the object instead of its content: key (the object key), file (the key's last segment; a zip entry's name), etag, size (bytes), lastModified, line (the row's number in the file, from 1), hive (a name=value folder of the key)",
      ),
    partition: z
      .string()
      .regex(/^[^/=\s]{1,256}$/, 'partition must be 1-256 characters without /, = or spaces (the name in a name=value folder of the key)')
      .optional()
      .describe('from hive: the partition name in the key (default: the column name)'),
  })
  .describe('A column of the destination table');

/**
 * A column that takes its value from the object (its key, name, ETag, size,
 * last-modified time, the row's line number, or a hive partition of the key)
 * rather than from the file's content: it is not looked up in the file.
 */
export function isObjectColumn(c: Pick<ColumnSpec, 'from'>): boolean {
  return c.from !== undefined;
}

/** The partition name a `from: hive` column reads. */
export function partitionName(c: Pick<ColumnSpec, 'name' | 'partition'>): string {
  return c.partition ?? c.name;
}

/**
 * The hive-style partitions of a key: each `name=value` folder (not the file
 * name), in key order, values percent-decoded as Hive and Spark escape them
 * (`ts=2024-05-01 10%3A00` is 10:00). The first folder of a name wins.
 */
export function hivePartitions(key: string): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  const seen = new Set<string>();
  for (const segment of key.split('/').slice(0, -1)) {
    const m = /^([^=\s]{1,256})=(.*)$/.exec(segment);
    if (!m || seen.has(m[1]!)) continue;
    seen.add(m[1]!);
    let value = m[2]!;
    try {
      value = decodeURIComponent(value);
    } catch {
      // Not valid percent-encoding: the text as written (as ClickHouse's decodeURLComponent leaves it).
    }
    out.push({ name: m[1]!, value });
  }
  return out;
}

export const engineSchema = z.strictObject({
  engine: z
    .enum(['MergeTree', 'ReplacingMergeTree', 'SummingMergeTree', 'AggregatingMergeTree'])
    .default('MergeTree'),
  partitionKey: sqlExpression('partitionKey').optional(),
  sortingKey: sqlExpression('sortingKey').optional(),
  primaryKey: sqlExpression('primaryKey').optional(),
  ttl: sqlExpression('ttl').optional(),
  ver: sqlExpression('ver').optional().describe('ReplacingMergeTree only: the version column; the row with the highest version is kept'),
  isDeleted: sqlExpression('isDeleted')
    .optional()
    .describe('ReplacingMergeTree only (needs ver): the UInt8 column marking a row as deleted'),
  samplingKey: sqlExpression('samplingKey').optional().describe('SAMPLE BY expression; must be part of the sorting key'),
  indexes: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'index name must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
        expr: sqlExpression('index expression'),
        type: z
          .string()
          .trim()
          .regex(INDEX_TYPE, "index type must be a skip index type like minmax, set(100) or bloom_filter(0.01)"),
        granularity: z.number().int().min(1).max(1_000_000).optional().describe('GRANULARITY; ClickHouse uses 1 when omitted'),
      }),
    )
    .max(100)
    .optional()
    .describe('Data-skipping indexes: INDEX <name> <expr> TYPE <type> [GRANULARITY <n>]'),
  /** Extra MergeTree SETTINGS as name -> value. */
  settings: z
    .record(
      z.string().regex(/^[a-z_][a-z0-9_]*$/, 'setting names are lower_snake_case'),
      z.union([z.string().max(200).refine((s) => !/['\\;]/.test(s), "setting values must not contain quotes, backslashes or ';'"), z.number(), z.boolean()]),
    )
    // Refined on the record (a key's own refinement would be reported as "Invalid key in record").
    .superRefine((settings, ctx) => {
      for (const key of Object.keys(settings)) {
        if (PROTECTED_TABLE_SETTING.test(key)) {
          ctx.addIssue({ code: 'custom', path: [key], message: 'deduplication settings are set by the connector: exactly-once loading depends on them' });
        }
      }
    })
    .optional(),
});

export const csvOptionsSchema = z.strictObject({
  // ClickHouse reads a delimiter of exactly one byte.
  delimiter: z.string().refine((d) => Buffer.byteLength(d, 'utf8') === 1, 'delimiter must be exactly one character, and a single byte (ASCII)').default(','),
  /** true: first line is a header; false: columns are positional. */
  header: z.boolean().default(true),
  /** Lines to skip before the header (or before data when there is no header). */
  skipLines: z.number().int().min(0).max(1000).default(0),
  quote: z.enum(['"', "'"]).default('"'),
});

export const limitsSchema = z.strictObject({
  maxFilesPerRun: z.number().int().min(0).default(DEFAULT_LIMITS.maxFilesPerRun),
  concurrency: z.number().int().min(1).max(64).default(DEFAULT_LIMITS.concurrency),
  maxFileBytes: z.number().int().min(0).default(DEFAULT_LIMITS.maxFileBytes),
  maxRowBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(DEFAULT_LIMITS.maxRowBytes),
  maxBatchFiles: z
    .number()
    .int()
    .min(1)
    .max(100)
    .optional()
    .describe('Small files imported together in one insert, at most (default 100); 1 = every file its own import, status and retry'),
});

/** A duration field (`30s`, `15m`, `1h`, `1h30m`) within bounds. */
const duration = (field: string, minMs: number, maxMs: number) =>
  z.string().superRefine((text, ctx) => {
    try {
      parseDuration(field, text, minMs, maxMs);
    } catch (e) {
      if (e instanceof DurationError) ctx.addIssue({ code: 'custom', message: e.reason });
      else throw e;
    }
  });

/** A point in time: ISO 8601 with a zone (Z or an offset), so it means the same instant wherever it is read. */
export const sinceSchema = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with Z or an offset, e.g. 2024-05-01T00:00:00Z' });

/** Whether an object's last-modified time (ISO 8601) is at or after `since` (always, without one). */
export function modifiedSince(lastModified: string, since: string | undefined): boolean {
  if (since === undefined) return true;
  const t = Date.parse(lastModified);
  // An object without a readable time (a store that sends none) is not filtered out.
  return Number.isNaN(t) || t >= Date.parse(since);
}

/** Whether a key is one `startAfter` lets through (always, without one). */
export function keyAfter(key: string, startAfter: string | undefined): boolean {
  // In S3's order (UTF-8 bytes), as the listing's StartAfter applies it.
  return startAfter === undefined || compareKeys(key, startAfter) > 0;
}

const dataSourceObject = z.strictObject({
  name: z.string().regex(DATA_SOURCE_NAME, 'name must match ^[a-z][a-z0-9_]{0,62}$'),
  description: z.string().max(2000).optional(),
  connection: z.string().min(1, 'connection must name a configured connection').max(128),
  bucketUri: z.string().superRefine((uri, ctx) => {
    try {
      parseBucketUri(uri);
    } catch (e) {
      if (e instanceof BucketUriError) ctx.addIssue({ code: 'custom', message: e.reason });
      else throw e;
    }
  }),
  format: z.enum(['csv', 'ndjson', 'parquet', 'auto']).default('auto'),
  compression: z.enum(['auto', 'none', 'gzip', 'zip', 'zstd']).default('auto'),
  csv: csvOptionsSchema.optional(),
  schedule: z
    .string()
    .default('@auto')
    .superRefine((s, ctx) => {
      try {
        parseSchedule(s);
      } catch (e) {
        if (e instanceof ScheduleError) ctx.addIssue({ code: 'custom', message: e.reason });
        else throw e;
      }
    }),
  mode: z.enum(['tracked', 'ordered']).default('tracked'),
  sweepInterval: duration('sweepInterval', MIN_SWEEP_MS, MAX_SWEEP_MS)
    .optional()
    .describe('Tracked mode: how often a tick lists the whole prefix to find late files (named before the last key seen); other ticks list only after the last key seen. Default 1h'),
  maxIdleInterval: duration('maxIdleInterval', MIN_IDLE_INTERVAL_MS, MAX_IDLE_INTERVAL_MS)
    .optional()
    .describe('@auto only: while ticks find nothing the interval doubles from 1m up to this; files, a sync or a notification bring it back to 1m. Unset: every minute'),
  since: sinceSchema
    .optional()
    .describe('Import only objects last modified at or after this time (ISO 8601 with Z or an offset, e.g. 2024-05-01T00:00:00Z): a backfill window, or history skipped. Files already imported stay'),
  startAfter: z
    .string()
    .min(1, 'startAfter must not be empty')
    .max(1024, 'startAfter is longer than 1024 characters (S3 keys are at most 1024 bytes)')
    .optional()
    .describe('Import only keys that sort after this one. Ordered mode: the initial marker, when later than the current one'),
  table: z.string().regex(TABLE_NAME, 'table must match ^[A-Za-z_][A-Za-z0-9_]{0,190}$').optional(),
  columns: z.array(columnSchema).min(1, 'columns, when given, must list at least one column').max(MAX_COLUMNS, `at most ${MAX_COLUMNS} columns per data source`).optional(),
  engine: engineSchema.optional(),
  limits: limitsSchema.optional(),
});

function checkCrossFieldRules(spec: z.infer<typeof dataSourceObject>, ctx: z.RefinementCtx) {
  const seen = new Set<string>();
  spec.columns?.forEach((col, i) => {
    if (seen.has(col.name)) ctx.addIssue({ code: 'custom', path: ['columns', i, 'name'], message: `duplicate column '${col.name}'` });
    seen.add(col.name);
    if (col.path && spec.format !== 'ndjson' && spec.format !== 'auto') {
      ctx.addIssue({ code: 'custom', path: ['columns', i, 'path'], message: `path is only for ndjson, not ${spec.format}` });
    }
    if (col.from !== undefined) {
      for (const field of ['path', 'source'] as const) {
        if (col[field] !== undefined) ctx.addIssue({ code: 'custom', path: ['columns', i, field], message: `${field} reads the file's content; a column with from: ${col.from} takes its value from the object` });
      }
    }
    if (col.partition !== undefined && col.from !== 'hive') {
      ctx.addIssue({ code: 'custom', path: ['columns', i, 'partition'], message: 'partition is for columns with from: hive' });
    }
  });
  if (spec.columns && spec.columns.length > 0 && spec.columns.every((c) => c.from !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['columns'], message: 'at least one column must be read from the files (a column without from)' });
  }
  const engine = spec.engine;
  if (engine && (engine.ver !== undefined || engine.isDeleted !== undefined) && engine.engine !== 'ReplacingMergeTree') {
    ctx.addIssue({ code: 'custom', path: ['engine', engine.ver !== undefined ? 'ver' : 'isDeleted'], message: `ver and isDeleted are for ReplacingMergeTree, not ${engine.engine}` });
  }
  if (engine?.isDeleted !== undefined && engine.ver === undefined) {
    ctx.addIssue({ code: 'custom', path: ['engine', 'isDeleted'], message: 'isDeleted needs ver (ReplacingMergeTree(ver, is_deleted))' });
  }
  const indexNames = new Set<string>();
  engine?.indexes?.forEach((ix, i) => {
    if (indexNames.has(ix.name)) ctx.addIssue({ code: 'custom', path: ['engine', 'indexes', i, 'name'], message: `duplicate index '${ix.name}'` });
    indexNames.add(ix.name);
  });
  if (spec.csv && spec.format !== 'csv' && spec.format !== 'auto') {
    ctx.addIssue({ code: 'custom', path: ['csv'], message: `csv options need format csv, not ${spec.format}` });
  }
  if (spec.sweepInterval !== undefined && spec.mode === 'ordered') {
    ctx.addIssue({ code: 'custom', path: ['sweepInterval'], message: 'sweepInterval is for tracked mode: ordered mode never lists keys before its marker' });
  }
  if (spec.maxIdleInterval !== undefined && spec.schedule.trim().toLowerCase() !== '@auto') {
    ctx.addIssue({ code: 'custom', path: ['maxIdleInterval'], message: `maxIdleInterval is for the @auto schedule, not ${spec.schedule} (an explicit schedule is kept as written)` });
  }
  // The table defaults to the name, so both are checked: the connector's own tables must stay out of reach.
  const table = spec.table ?? spec.name;
  if (table.startsWith('s3ch_')) {
    ctx.addIssue({ code: 'custom', path: [spec.table ? 'table' : 'name'], message: "names starting with 's3ch_' are reserved for the connector's own tables" });
  }
  if (/(_quarantine|_s3ch_\w+)$/.test(table)) {
    ctx.addIssue({ code: 'custom', path: [spec.table ? 'table' : 'name'], message: "names ending in _quarantine or _s3ch_* are used by the import path of another table" });
  }
}

/** The data source spec as a user writes it (defaults not yet applied to nested objects). */
export const dataSourceSpecSchema = dataSourceObject.superRefine(checkCrossFieldRules);

/** A spec with every default filled in: what workflows and activities work with. */
export type DataSourceSpecInput = z.input<typeof dataSourceSpecSchema>;
export type DataSourceSpec = z.infer<typeof dataSourceSpecSchema> & {
  table: string;
  limits: z.infer<typeof limitsSchema>;
  engine: z.infer<typeof engineSchema>;
};
export type ColumnSpec = z.infer<typeof columnSchema>;
export type CsvOptions = z.infer<typeof csvOptionsSchema>;

/** Apply the defaults that depend on other fields (table = name, nested defaults). */
export function normalizeSpec(spec: z.infer<typeof dataSourceSpecSchema>): DataSourceSpec {
  return {
    ...spec,
    table: spec.table ?? spec.name,
    csv: spec.format === 'csv' || spec.format === 'auto' ? csvOptionsSchema.parse(spec.csv ?? {}) : undefined,
    engine: engineSchema.parse(spec.engine ?? {}),
    limits: limitsSchema.parse(spec.limits ?? {}),
  };
}

/** PATCH body: any spec field but the name. */
export const dataSourcePatchSchema = dataSourceObject.omit({ name: true }).partial().extend({
  /** null removes it: every object is eligible again (files before it are found by the next sweep). */
  since: dataSourceObject.shape.since.unwrap().nullable().optional(),
  /** null removes it (in ordered mode the marker stays where it is). */
  startAfter: dataSourceObject.shape.startAfter.unwrap().nullable().optional(),
  /** Changing bucketUri or format of a data source that already imported files needs this. */
  force: z.boolean().optional(),
});
export type DataSourcePatch = z.infer<typeof dataSourcePatchSchema>;
