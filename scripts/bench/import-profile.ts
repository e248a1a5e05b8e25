/**
 * Where one import's time goes: the connector's own import statement taken
 * apart stage by stage, on the benchmark's rows, read by embedded chDB from a
 * local file (no S3, no Temporal, nothing else running in the engine). Each
 * line is the best of three runs, wall time and the CPU time spent in it, with
 * the ceiling (a plain typed insert of the same file) as the yardstick:
 *
 *   npx tsx scripts/bench/import-profile.ts [--rows 1000000] [--format csv|ndjson|parquet]
 *
 * The stages: parsing typed values into a Null table (what the ceiling pays
 * before writing); parsing as text (what the connector parses into); that
 * plus the conversion to the declared types and the verdict (into a Null
 * table); and the whole import (conversion, the typed table, quarantine and
 * per-file row counts).
 */
import { Session } from 'chdb';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImportPlan, FILE_ROWS_TABLE, type ResolvedFormat } from '../../activities/ddl.js';
import { insertStatement } from '../../clickhouse/import-statement.js';
import { importSettings } from '../../clickhouse/import-settings.js';
import { dataSourceSpecSchema, normalizeSpec } from '../../schemas/datasource.js';
import { quoteIdent, quoteString } from '../../schemas/identifiers.js';
import { BENCH_COLUMNS, STRUCTURE, writeCsvFile } from './data.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, format: { type: 'string', default: 'csv' } } });
const rows = Number(values.rows);
const format = values.format as ResolvedFormat;
if (!Number.isInteger(rows) || rows < 1) throw new Error('--rows must be a positive integer');
if (!['csv', 'ndjson', 'parquet'].includes(format)) throw new Error('--format must be csv, ndjson or parquet');

const dir = mkdtempSync(join(tmpdir(), 's3ch-profile-'));
const session = new Session(join(dir, 'chdb'));
const q = (sql: string) => session.query(sql, 'TSV');
try {
  const csv = join(dir, 'data.csv');
  await writeCsvFile(csv, 1, rows);
  const file = join(dir, `data.${format}`);
  const chFormat = { csv: 'CSVWithNames', ndjson: 'JSONEachRow', parquet: 'Parquet' }[format];
  if (format !== 'csv') {
    q(`INSERT INTO FUNCTION file(${quoteString(file)}, ${quoteString(chFormat)}) SELECT * FROM file(${quoteString(csv)}, 'CSVWithNames', ${quoteString(STRUCTURE)}) SETTINGS output_format_json_quote_decimals = 0, output_format_json_quote_64bit_integers = 0`);
  }
  q('CREATE DATABASE p');
  const spec = normalizeSpec(dataSourceSpecSchema.parse({
    name: 'profile', connection: 'local', bucketUri: `s3://profile/*.${format}`, format, table: 'profile',
    columns: BENCH_COLUMNS.map((c) => ({ name: c.name, type: c.type, ...(format === 'ndjson' ? { path: `$.${c.name}` } : {}) })),
    engine: { partitionKey: 'toYYYYMM(timestamp)', sortingKey: '(page, timestamp)' },
  }));
  const plan = buildImportPlan('p', spec, spec.columns!, format, 'profile');
  q(`CREATE TABLE p.${FILE_ROWS_TABLE} (datasource String, key String, etag String, rows UInt64, quarantined UInt64) ENGINE = SummingMergeTree ORDER BY (datasource, key, etag)`);
  for (const sql of plan.create) q(sql);
  const columnsDdl = BENCH_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
  q(`CREATE TABLE p.plain (${columnsDdl}) ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY (page, timestamp)`);
  q(`CREATE TABLE p.typed_null (${columnsDdl}) ENGINE = Null`);
  // The landing and converted tables again, without the views behind them.
  q(`CREATE TABLE p.landing_bare AS ${plan.names.landing} ENGINE = Null`);
  q(`CREATE TABLE p.converted_bare AS ${plan.names.converted} ENGINE = Null`);
  q(`CREATE TABLE p.landing_convert AS ${plan.names.landing} ENGINE = Null`);
  const convertSelect = (plan.create.find((s) => s.startsWith(`CREATE MATERIALIZED VIEW IF NOT EXISTS ${plan.names.convertView}`)) ?? '').replace(/^.*? AS SELECT /, 'SELECT ').replace(` FROM ${plan.names.landing}`, ' FROM p.landing_convert');
  q(`CREATE MATERIALIZED VIEW p.convert_only TO p.converted_bare AS ${convertSelect}`);

  const source = (structure: string, inputFormat: string) => `file(${quoteString(file)}, ${quoteString(inputFormat)}, ${quoteString(structure)}, 'none')`;
  const params = Object.entries({ file: 'data', etag: 'e', path: '', quotedEtag: '', key: 'data', fileName: 'data', size: '1', lastModified: '' }).map(([k, v]) => `SET param_${k} = ${quoteString(v)}`).join('; ');
  let token = 0;
  const connectorInsert = (insertInto: string) =>
    `${params}; ${insertStatement({ insertInto, select: plan.select, source: source(plan.structure, plan.inputFormat), globbed: false, checkEtag: false, settings: { ...plan.settings, ...importSettings(`profile-${token++}`, spec.limits.maxRowBytes) } })}`;
  /** Best of three by wall time, with the CPU seconds the process (the engine's threads included) spent in that run. */
  const best = (sql: () => string) => {
    let min = { seconds: Infinity, cpu: Infinity };
    for (let i = 0; i < 3; i++) {
      const statement = sql();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      q(statement);
      const seconds = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (seconds < min.seconds) min = { seconds, cpu: (c.user + c.system) / 1e6 };
    }
    return min;
  };
  const ceiling = best(() => `INSERT INTO p.plain SELECT * FROM ${source(STRUCTURE, chFormat)}`);
  const line = (label: string, r: { seconds: number; cpu: number }) =>
    console.log(`${label.padEnd(58)} ${r.seconds.toFixed(2).padStart(6)} s  ${(r.seconds / ceiling.seconds).toFixed(2)}x   cpu ${r.cpu.toFixed(2).padStart(5)} s  ${(r.cpu / ceiling.cpu).toFixed(2)}x`);
  console.log(`${rows.toLocaleString('en-US')} rows, ${format}, embedded chDB reading a local file (best of 3; wall and CPU time, each against the ceiling's)`);
  line('ceiling: typed insert into a MergeTree table', ceiling);
  line('parse typed values only (into a Null table)', best(() => `INSERT INTO p.typed_null SELECT * FROM ${source(STRUCTURE, chFormat)}`));
  line('connector: parse as text only (landing, no views)', best(() => connectorInsert('INSERT INTO p.landing_bare')));
  line('connector: parse as text + convert + verdict (no writes)', best(() => connectorInsert(plan.insertInto.replace(plan.names.landing, 'p.landing_convert'))));
  line('connector: the whole import (typed table, quarantine, counts)', best(() => connectorInsert(plan.insertInto)));
} finally {
  session.cleanup?.();
  rmSync(dir, { recursive: true, force: true });
}
