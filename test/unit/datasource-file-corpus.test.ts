import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DatasourceFileError, readDatasourceFile, toDatasourceFile, type DatasourceFileResult } from '../../schemas/datasource-file.js';
import { dataSourceSpecSchema } from '../../schemas/datasource.js';

/**
 * A corpus of `.datasource` files written the way Tinybird projects write
 * them (CLI-generated headers, tokens, tags, shared workspaces, forward
 * queries, Parquet schemas, unindented SCHEMA lines), each read into the exact
 * spec and warnings expected; and files of other kinds, each refused with the
 * reason that matters.
 */
const DIR = fileURLToPath(new URL('../fixtures/datasource/', import.meta.url));

function read(file: string): DatasourceFileResult {
  return readDatasourceFile(readFileSync(`${DIR}${file}`, 'utf8'), { name: file.replace(/\.datasource$/, '') });
}

const TOKEN_WHY = "access tokens are Tinybird's; this API has its own bearer tokens (S3CH_API_TOKENS)";

const ACCEPTED: Record<string, DatasourceFileResult> = {
  'web_events.datasource': {
    spec: {
      name: 'web_events',
      description: 'Raw page views from the web tracker.\n\n## Source\nOne NDJSON file per collector per minute.',
      connection: 'tracker_bucket',
      bucketUri: 's3://acme-tracker/page_views/*.ndjson.gz',
      format: 'ndjson',
      schedule: '@auto',
      columns: [
        { name: 'event_id', type: 'UUID', path: '$.id' },
        { name: 'timestamp', type: "DateTime64(3, 'UTC')", path: '$.ts' },
        // DEFAULT before the json path ...
        { name: 'received_at', type: 'DateTime', path: '$.received_at', default: 'now()' },
        // ... and after it; a trailing `-- comment` is dropped.
        { name: 'day', type: 'Date', path: '$.day', default: 'toDate(timestamp)' },
        { name: 'country', type: 'LowCardinality(String)', path: '$.geo.country', default: "'unknown'" },
        { name: 'user_agent', type: 'String', path: "$.context['user-agent']", codec: 'ZSTD(3)' },
        { name: 'utm', type: 'Nullable(String)', path: "$.context.['utm.source']" },
        { name: 'payload', type: 'String', path: '$.payload' },
        { name: 'product_ids', type: 'Array(String)', path: '$.products[:].id' },
        { name: 'products', type: 'Array(String)', path: '$.products[:]' },
        { name: 'first_product', type: 'String', path: '$.products[0].id' },
        { name: 'duration_ms', type: 'UInt32', path: '$.metrics.duration_ms', default: '0', codec: 'T64, LZ4' },
      ],
      engine: {
        engine: 'MergeTree',
        partitionKey: 'toYYYYMM(timestamp)',
        sortingKey: 'country, timestamp',
        ttl: 'toDateTime(timestamp) + toIntervalDay(90)',
        settings: { index_granularity: 8192 },
      },
    },
    warnings: [
      'line 2: VERSION 3 is ignored: Tinybird resource versions have no equivalent; the data source is named by the file',
      `line 3: TOKEN "tracker_append" APPEND is ignored: ${TOKEN_WHY}`,
      `line 4: TOKEN "dashboard_read" READ is ignored: ${TOKEN_WHY}`,
      'line 5: TAGS "web, tracking" is ignored: Tinybird tags have no equivalent here',
    ],
  },
  'orders_latest.datasource': {
    spec: {
      name: 'orders_latest',
      description: 'Latest state of every order, deduplicated by version.',
      // Single-quoted values lose their quotes, and trailing `# comments` are dropped.
      connection: 'orders-role',
      bucketUri: 's3://acme-orders/changes/**/*.jsonl',
      format: 'ndjson',
      schedule: '@on-demand',
      columns: [
        { name: 'order_id', type: 'UInt64', path: '$.order_id' },
        { name: 'customer_id', type: 'UInt64', path: '$.customer.id' },
        { name: 'status', type: 'LowCardinality(String)', path: '$.status' },
        { name: 'amount', type: 'Decimal(18, 2)', path: '$.amount' },
        { name: 'sku_list', type: 'Array(String)', path: '$.lines[:].sku' },
        { name: 'updated_at', type: 'DateTime64(3)', path: '$.updated_at' },
        { name: 'is_deleted', type: 'UInt8', path: '$.deleted', default: '0' },
      ],
      engine: {
        engine: 'ReplacingMergeTree',
        sortingKey: 'order_id, intHash32(customer_id)',
        samplingKey: 'intHash32(customer_id)',
        ver: 'updated_at',
        isDeleted: 'is_deleted',
        indexes: [
          { name: 'idx_status', expr: 'status', type: 'set(100)', granularity: 4 },
          { name: 'idx_skus', expr: 'sku_list', type: 'bloom_filter(0.01)', granularity: 1 },
          { name: 'idx_amount', expr: 'amount', type: 'minmax' },
        ],
      },
    },
    warnings: [
      `line 3: TOKEN 'orders_app' APPEND is ignored: ${TOKEN_WHY}`,
      'lines 26-28: SHARED_WITH > analytics_workspace finance_workspace is ignored: sharing with other Tinybird workspaces has no equivalent here',
      "lines 30-32: FORWARD_QUERY > SELECT order_id, customer_id, status, amount, sku_list, updated_at, is_deleted FROM orders_latest is ignored: forward queries migrate a Tinybird data source's rows on a schema change; here new columns are added to the table",
    ],
  },
  'sales_parquet.datasource': {
    spec: {
      name: 'sales_parquet',
      connection: 'warehouse',
      bucketUri: 's3://acme-warehouse/sales/year=*/month=*/*.parquet',
      // Parquet from the bucket URI, although every column has a json path: the path names the file's column.
      format: 'parquet',
      schedule: '@every 15m',
      columns: [
        { name: 'sale_id', type: 'BIGINT UNSIGNED' },
        { name: 'store', type: 'VARCHAR(64)', source: 'store_name' },
        { name: 'price', type: 'DOUBLE' },
        { name: 'sold_at', type: 'timestamp(3)', source: 'sold at' },
        { name: 'attributes', type: 'JSON(max_dynamic_paths=64, color String)' },
        { name: 'quantity', type: 'INT' },
        { name: 'channel', type: "Enum('web', 'store', 'phone')" },
      ],
      engine: { engine: 'MergeTree', sortingKey: 'sale_id', primaryKey: 'sale_id' },
    },
    warnings: [],
  },
  'daily_totals.datasource': {
    spec: {
      name: 'daily_totals',
      connection: 'reports',
      bucketUri: 's3://acme-reports/daily/*.csv.gz',
      format: 'csv',
      compression: 'gzip',
      schedule: '0 */2 * * *',
      // Unindented SCHEMA lines, one of them a column named like a key (version).
      columns: [
        { name: 'day', type: 'Date' },
        { name: 'store_id', type: 'UInt32' },
        { name: 'version', type: 'UInt32' },
        { name: 'revenue', type: 'SimpleAggregateFunction(sum, Float64)' },
        { name: 'last_seen', type: 'SimpleAggregateFunction(max, DateTime)', codec: 'Delta, ZSTD(1)' },
      ],
      engine: { engine: 'AggregatingMergeTree', sortingKey: 'day, store_id', settings: { index_granularity: 1024, storage_policy: 'default' } },
    },
    warnings: [],
  },
  // IMPORT_FROM_TIMESTAMP: only objects last modified from then on are imported.
  'backfill_from.datasource': {
    spec: {
      name: 'backfill_from',
      connection: 'logs_bucket',
      bucketUri: 's3://acme-logs/app/*.ndjson',
      format: 'ndjson',
      schedule: '@auto',
      since: '2024-06-01T00:00:00Z',
      columns: [
        { name: 'ts', type: 'DateTime', path: '$.ts' },
        { name: 'level', type: 'LowCardinality(String)', path: '$.level' },
      ],
    },
    warnings: [],
  },
};

const REFUSED: Record<string, [line: number, reason: string]> = {
  // The connector kind is the reason, although ENGINE_SIGN (line 9) comes first and is refused too.
  'clicks_kafka.datasource': [11, 'this is a Kafka data source (KAFKA_CONNECTION_NAME); this connector imports files from S3'],
  // ... and although IMPORT_STRATEGY REPLACE is refused too.
  'accounts_bigquery.datasource': [8, 'this is a BigQuery data source (IMPORT_SERVICE bigquery); this connector imports files from S3'],
  'orders_snowflake.datasource': [4, 'this is a Snowflake data source (IMPORT_SERVICE snowflake); this connector imports files from S3'],
  'users_dynamodb.datasource': [4, 'this is a DynamoDB data source (IMPORT_SERVICE dynamodb); this connector imports files from S3'],
  'country_lookup.datasource': [5, 'this is a Join engine data source (an in-memory lookup table filled by pipes); this connector loads S3 files into MergeTree tables'],
  'with_include.datasource': [1, 'INCLUDE shared/columns.incl pulls in a file this connector does not have'],
  'events_api.datasource': [0, 'this data source has no IMPORT_ keys: Tinybird fills it from the Events API, a pipe or a materialized view'],
  'agg_state.datasource': [3, 'column `visitors`: AggregateFunction columns hold partial aggregation states, which files cannot provide'],
};

describe('the .datasource corpus', () => {
  it('covers every file in the folder', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.datasource')).sort();
    expect(files).toStrictEqual([...Object.keys(ACCEPTED), ...Object.keys(REFUSED)].sort());
  });

  describe.each(Object.entries(ACCEPTED))('%s', (file, expected) => {
    it('reads into the expected spec, field by field, with a warning per ignored line', () => {
      const got = read(file);
      for (const field of new Set([...Object.keys(expected.spec), ...Object.keys(got.spec)])) {
        expect([field, got.spec[field as keyof typeof got.spec]]).toStrictEqual([field, expected.spec[field as keyof typeof expected.spec]]);
      }
      expect(got.warnings).toStrictEqual(expected.warnings);
    });

    it('is a valid spec', () => {
      const result = dataSourceSpecSchema.safeParse(read(file).spec);
      expect(result.error?.issues).toBeUndefined();
    });

    it('reads back to the same spec after export, with nothing ignored', () => {
      const { spec } = read(file);
      const text = toDatasourceFile(spec);
      expect(readDatasourceFile(text, { name: spec.name })).toStrictEqual({ spec, warnings: [] });
    });
  });

  it.each(Object.entries(REFUSED))('%s is refused with the reason that matters', (file, [line, reason]) => {
    let error: unknown;
    try {
      read(file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DatasourceFileError);
    const e = error as DatasourceFileError;
    expect([e.line, e.reason.slice(0, reason.length)]).toStrictEqual([line, reason]);
  });
});
