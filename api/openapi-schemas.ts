import { z } from 'zod';
import { dataSourceSpecSchema, dataSourcePatchSchema, sinceSchema } from '../schemas/datasource.js';
import { FILE_STATUSES } from '../activities/ledger.js';

/** Shapes for the OpenAPI document and request validation; responses are documented, not re-validated. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });

export const nameParam = z.object({ name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'name must match ^[a-z][a-z0-9_]{0,62}$') });

const fileCounts = z.object(Object.fromEntries(FILE_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof FILE_STATUSES)[number], z.ZodNumber>);

export const dataSourceResourceSchema = z
  .looseObject({
    name: z.string(),
    since: z.string().optional().describe('Only objects last modified at or after this time are imported (absent: all)'),
    startAfter: z.string().optional().describe('Only keys after this one are imported (absent: all)'),
    status: z.object({
      state: z.enum(['idle', 'syncing', 'paused', 'error', 'deleting']),
      lastRunAt: z.string().nullable(),
      nextRunAt: z.string().nullable(),
      error: z.string().nullable(),
      backlog: z.boolean(),
      polling: z
        .object({
          intervalMs: z.number().nullable().describe('Interval between scheduled ticks now; null for cron and on-demand'),
          adaptive: z.boolean().describe('@auto with maxIdleInterval: the interval doubles while ticks find nothing'),
          maxIntervalMs: z.number().nullable(),
          idleTicks: z.number().describe('Scheduled ticks in a row that found nothing (they record no run)'),
          lastTickAt: z.string().nullable(),
          sweepIntervalMs: z.number().nullable().describe('Tracked mode: how often a tick lists the whole prefix'),
          lastSweepAt: z.string().nullable(),
        })
        .loose()
        .nullable()
        .optional()
        .describe('How the data source polls: live from its workflow (null or absent when the workflow did not answer, and in list items)'),
    }),
    stats: z.object({ files: fileCounts, rows: z.number(), bytes: z.number(), quarantinedRows: z.number() }),
    notifications: z
      .object({
        lastEventAt: z.string().nullable().describe('When an event notification last named a key this data source imports'),
        events: z.number().describe('Keys event notifications named for it since `since`'),
        byChannel: z.object({ webhook: z.number(), sqs: z.number() }),
        since: z.string().describe('When the counting processes started'),
      })
      .describe('Notification health: what the webhooks of this API process and the SQS consumers of the live worker processes handed to it'),
  })
  .meta({ id: 'DataSource' });

/** The create answer: the resource plus what the glob check found (e.g. nothing matches yet). */
export const createdDataSourceSchema = dataSourceResourceSchema
  .extend({ warnings: z.array(z.string()) })
  .meta({ id: 'CreatedDataSource' });

/** How the preview explains a bucketUri's glob. */
export const globDescriptionSchema = z
  .object({
    bucket: z.string(),
    pattern: z.string(),
    listPrefix: z.string().meta({ description: 'The literal prefix listed with ListObjectsV2' }),
    matcher: z.string().meta({ description: 'The matcher built from the pattern, in words' }),
    ranges: z.array(z.object({
      text: z.string(), from: z.number(), to: z.number(), count: z.number(),
      width: z.number().meta({ description: 'Zero-padded to this many digits; 0 = plain numbers' }),
      values: z.array(z.string()), truncated: z.boolean(),
    })),
    extensions: z.array(z.object({ syntax: z.string(), note: z.string() })),
    warnings: z.array(z.string()),
    states: z.number(),
  })
  .meta({ id: 'GlobDescription' });

export const specBody = dataSourceSpecSchema.meta({ id: 'DataSourceSpec' });
export const patchBody = dataSourcePatchSchema.meta({ id: 'DataSourcePatch' });

export const fileItemSchema = z.object({
  key: z.string(),
  etag: z.string(),
  size: z.number(),
  status: z.enum(FILE_STATUSES),
  attempts: z.number().describe("Import attempts of this version of the object (same key and ETag), counted across every run and retry"),
  rows: z.number(),
  quarantinedRows: z.number(),
  error: z.string().nullable(),
  updatedAt: z.string(),
  generation: z.number().describe('0 when the version was only imported; n after its n-th deliberate re-import (POST .../reimport)'),
});

export const listOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });

export const filesQuery = z.strictObject({
  status: z.enum(FILE_STATUSES).optional(),
  search: z.string().max(1024).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(4096).optional(),
});

/** GET /v1/datasources: one page, optionally only one state or names starting with a prefix. */
export const dataSourcesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(4096).optional().meta({ description: 'nextCursor of the previous page' }),
  state: z.enum(['idle', 'syncing', 'paused', 'error', 'deleting']).optional(),
  prefix: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'prefix must be the start of a data source name: ^[a-z][a-z0-9_]{0,62}$').optional(),
});

export const limitQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

export const deleteQuery = z.strictObject({
  dropTable: z.enum(['true', 'false']).default('false'),
  dropLedger: z.enum(['true', 'false']).default('false'),
});

export const retryBody = z.strictObject({ keys: z.array(z.string().min(1).max(1024)).max(1000).optional() });

export const reimportBody = z
  .strictObject({
    keys: z.array(z.string().min(1).max(1024)).min(1, 'keys, when given, must name at least one key').max(1000, 're-import at most 1000 keys at once (or a since/until window)').optional()
      .describe('Keys to load once more (each must match the glob)'),
    since: sinceSchema.optional().describe('With until or alone: objects last modified at or after this time'),
    until: sinceSchema.optional().describe('With since or alone: objects last modified before this time'),
  })
  .superRefine((b, ctx) => {
    const window = b.since !== undefined || b.until !== undefined;
    if (b.keys && window) ctx.addIssue({ code: 'custom', path: ['keys'], message: 're-import either keys or a since/until window, not both' });
    if (!b.keys && !window) ctx.addIssue({ code: 'custom', path: ['keys'], message: 're-import needs keys or a since/until window' });
    if (b.since !== undefined && b.until !== undefined && Date.parse(b.until) <= Date.parse(b.since)) {
      ctx.addIssue({ code: 'custom', path: ['until'], message: 'until must be later than since' });
    }
  })
  .meta({ id: 'ReimportRequest' });

export const sqlBody = z.strictObject({ query: z.string().min(1, 'query must not be empty').max(100_000) });

export const previewBody = z.strictObject({
  connection: z.string().min(1),
  bucketUri: z.string().min(1),
  format: z.enum(['csv', 'ndjson', 'parquet', 'auto']).optional(),
  compression: z.enum(['auto', 'none', 'gzip', 'zip', 'zstd']).optional(),
  csv: z.record(z.string(), z.unknown()).optional(),
  limit: z.number().int().min(1).max(1000).optional(),
});

/** A route's JSON response, for createRoute. */
export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({ content: { 'application/json': { schema } }, description });
/** A route's problem+json error response, for createRoute. */
export const problemResponse = (description: string) => ({ content: { 'application/problem+json': { schema: problemSchema } }, description });
