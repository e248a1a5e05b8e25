import { beforeAll, describe, expect, inject, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { queryRows, type Destination } from '../../clickhouse/destination.js';
import { quoteIdent, quoteString } from '../../schemas/identifiers.js';
import { adminClient, eventually, processDestination, put, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';
import { jsonValues } from '../support/typed-values.js';

/**
 * The differential test of typed columns: for every type a user can declare,
 * seeded values (edge cases first) are written as NDJSON, loaded through the
 * real import path (MinIO -> ClickHouse's s3() -> conversion views) and
 * compared value by value with ClickHouse's own typed reading of the same
 * file (JSONEachRow into a scratch table of the same columns). What
 * ClickHouse reads must land exactly so; what it refuses must be
 * quarantined with a reason, never loaded differently. The values
 * ClickHouse read are then written by ClickHouse as Parquet and as
 * CSVWithNames and loaded again, compared with ClickHouse's Parquet and CSV
 * readers of those files. Reproduce a failure with its seed:
 * `S3CH_VALUES_SEED=<seed> npx vitest run test/e2e/typed-values.test.ts`.
 */

const SEED = Number(process.env.S3CH_VALUES_SEED ?? 26);
/** Values per type: its edge cases, refused and checked values, then random ones. */
const PER_TYPE = 40;

const TYPES = [
  'String', 'Int64', 'UInt64', 'Int8', 'Float64', 'Bool',
  'Decimal(9, 2)', 'Decimal(38, 10)', 'UUID', 'IPv4', 'IPv6', 'Date32',
  "DateTime64(3, 'UTC')", "DateTime64(6, 'Asia/Kolkata')", "DateTime('UTC')", "DateTime64(3, 'Europe/Berlin')", 'FixedString(4)',
  "Enum8('a' = 1, 'b' = 2, 'it\\'s' = -128)", "Enum16('x' = -1000, 'y' = 1000)",
  'Nullable(Int64)', 'Nullable(String)', 'Nullable(Bool)', 'LowCardinality(String)', 'LowCardinality(Nullable(String))',
  'Array(String)', 'Array(Array(String))', 'Array(Nullable(Int64))', 'Array(LowCardinality(String))',
  'Array(Decimal(9, 2))', 'Array(UUID)', 'Array(IPv6)', 'Array(Nullable(Date32))', "Array(DateTime64(3, 'UTC'))",
  "Array(Enum8('a' = 1, 'b' = 2, 'it\\'s' = -128))", 'Array(FixedString(4))', 'Array(Float64)', 'Array(Bool)',
  'Array(Int8)', 'Map(String, Int64)', 'Map(Int64, String)', 'Map(String, Array(Nullable(String)))', 'Map(String, Map(String, String))', 'Map(LowCardinality(String), Bool)',
  'Tuple(Int64, String)', 'Tuple(a Int64, b Nullable(String))', 'Tuple(s String, t Tuple(Float64, Array(String)))',
  'Array(Tuple(String, Nullable(Float64)))', 'Array(Tuple(k String, v UInt64))',
];

const col = (k: number) => `c${k}`;
const structure = `id UInt32, ${TYPES.map((t, k) => `${col(k)} ${t}`).join(', ')}`;

interface Line {
  id: number;
  column: string;
  type: string;
  json: string;
  checked: boolean;
}

/** One line per value: `{"id": n, "c<k>": <value>}`; every other column is absent (its default, in both reads). */
function ndjsonLines(): Line[] {
  const lines: Line[] = [];
  TYPES.forEach((type, k) => {
    for (const v of jsonValues(type, SEED * 1000 + k, PER_TYPE)) {
      lines.push({ id: lines.length + 1, column: col(k), type, json: v.json, checked: v.checked === true });
    }
  });
  return lines;
}

describe(`typed values load as ClickHouse reads them (seed ${SEED})`, () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;
  let dest: Destination;
  useTestStack((stack) => ({ c, s3, bucket } = stack));
  beforeAll(async () => {
    dest = await processDestination();
  });

  const prefix = uid('tv');
  const lines = ndjsonLines();
  /** The scratch table holding ClickHouse's own JSONEachRow reading of the NDJSON file. */
  const reference = uid('ref_ndjson');

  const source = (key: string, format: string) =>
    `s3(${[`${inject('minioEndpoint')}/${bucket}/${key}`, inject('minioUser'), inject('minioPassword'), format, structure].map(quoteString).join(', ')})`;
  // Scratch tables and objects written with s3(): an administrator's work, not the connector's.
  const command = async (query: string) => (await adminClient()).command({ query });
  const select = <T>(query: string) => queryRows<T>(dest.imports, query);

  /** Create an on-demand data source over one object, with every column declared, sync once and wait until it settled. */
  async function load(key: string, format: string): Promise<string> {
    const name = uid('tv');
    const columns = [{ name: 'id', type: 'UInt32' }, ...TYPES.map((type, k) => ({ name: col(k), type }))];
    const res = await c.request('POST', '/v1/datasources', {
      name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${key}`, format, columns, engine: { engine: 'MergeTree', sortingKey: 'id' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await eventually(`${name} settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === 1 && reportsRunFinished(r.body, `datasource:${name}/1`);
    }, 180_000);
    const files = await c.request('GET', `/v1/datasources/${name}/files`);
    expect(files.body.items[0], JSON.stringify(files.body.items[0])).toMatchObject({ status: 'success' });
    return name;
  }

  /** Rows of a table by id, as JSONEachRow renders them (the same column types render the same way). */
  async function byId(table: string): Promise<Map<number, Record<string, unknown>>> {
    const rows = await select<Record<string, unknown>>(`SELECT * FROM ${quoteIdent(dest.database)}.${quoteIdent(table)} ORDER BY id`);
    return new Map(rows.map((r) => [Number(r.id), r]));
  }

  /** Every row of `want` is in `got` with every value equal; the differences, described, else []. */
  function differences(got: Map<number, Record<string, unknown>>, want: Map<number, Record<string, unknown>>, describeId: (id: number) => string, why = new Map<number, unknown>()): string[] {
    const out: string[] = [];
    for (const [id, row] of want) {
      const mine = got.get(id);
      if (!mine) {
        out.push(`${describeId(id)}: not loaded (${JSON.stringify(why.get(id) ?? null)})`);
        continue;
      }
      for (const [k, v] of Object.entries(row)) {
        if (JSON.stringify(mine[k]) !== JSON.stringify(v)) out.push(`${describeId(id)}: ${k} = ${JSON.stringify(mine[k])}, ClickHouse reads ${JSON.stringify(v)}`);
      }
    }
    return out;
  }

  it('NDJSON: every value ClickHouse reads lands as it reads it; every value it refuses is quarantined with a reason', async () => {
    const key = `${prefix}/values.ndjson`;
    await put(s3, bucket, key, lines.map((l) => `{"id":${l.id},"${l.column}":${l.json}}`).join('\n') + '\n');
    const name = await load(key, 'ndjson');

    // ClickHouse's own typed reading. Skipping rows it cannot parse leaves out exactly the refused
    // values (each line carries one). Times are read best-effort, as the connector documents.
    await command(`CREATE TABLE ${reference} (${structure}) ENGINE = MergeTree ORDER BY id`);
    await command(`INSERT INTO ${reference} SELECT * FROM ${source(key, 'JSONEachRow')} SETTINGS input_format_allow_errors_num = 1000000, input_format_allow_errors_ratio = 1, date_time_input_format = 'best_effort'`);

    const want = await byId(reference);
    const got = await byId(name);
    const describeLine = (id: number) => `line ${id} (${lines[id - 1]!.type}: ${lines[id - 1]!.json})`;
    const quarantined = await select<{ line: number; column: string; error: string }>(
      `SELECT toUInt32(_line) AS line, column, error FROM ${quoteIdent(dest.database)}.${quoteIdent(`${name}_quarantine`)} ORDER BY _line`,
    );
    const quarantine = new Map(quarantined.map((q) => [q.line, q]));

    // Values the connector's documented checks refuse (impossible dates) are the only ones ClickHouse reads but the connector does not.
    const checked = new Set(lines.filter((l) => l.checked).map((l) => l.id));
    for (const id of checked) {
      expect(quarantine.get(id), describeLine(id)).toMatchObject({ column: lines[id - 1]!.column, error: `cannot convert to ${lines[id - 1]!.type}` });
      want.delete(id);
    }
    expect(differences(got, want, describeLine, quarantine)).toEqual([]);

    const refused = lines.filter((l) => !want.has(l.id) && !checked.has(l.id));
    const wrong = refused.flatMap((l) => {
      const q = quarantine.get(l.id);
      if (got.has(l.id)) return [`${describeLine(l.id)}: ClickHouse refuses it, the connector loaded ${JSON.stringify(got.get(l.id)![l.column])}`];
      if (!q || q.column !== l.column || !q.error) return [`${describeLine(l.id)}: ClickHouse refuses it, quarantined as ${JSON.stringify(q)}`];
      return [];
    });
    expect(wrong).toEqual([]);
    expect(got.size + quarantine.size).toBe(lines.length);
    // The test means something: both outcomes occur, for most types.
    expect(refused.length).toBeGreaterThan(50);
    expect(want.size).toBeGreaterThan(lines.length * 0.8);
  });

  /** Write ClickHouse's reading of the NDJSON file as `format` with ClickHouse, load it, and compare with ClickHouse's reading of that file. */
  async function roundTrip(format: 'Parquet' | 'CSVWithNames', spec: 'parquet' | 'csv', ext: string) {
    const key = `${prefix}/values.${ext}`;
    await command(`INSERT INTO FUNCTION ${source(key, format)} SELECT * FROM ${reference} ORDER BY id SETTINGS s3_truncate_on_insert = 1`);
    const name = await load(key, spec);
    const read = uid(`ref_${spec}`);
    await command(`CREATE TABLE ${read} (${structure}) ENGINE = MergeTree ORDER BY id`);
    await command(`INSERT INTO ${read} SELECT * FROM ${source(key, format)}`);
    const want = await byId(read);
    expect(want.size).toBe((await byId(reference)).size);
    const describeId = (id: number) => `${format} row id ${id} (${lines[id - 1]!.type}: ${lines[id - 1]!.json})`;
    const quarantined = await select<{ line: number; column: string; error: string }>(
      `SELECT toUInt32(_line) AS line, column, error FROM ${quoteIdent(dest.database)}.${quoteIdent(`${name}_quarantine`)} ORDER BY _line`,
    );
    // Rows are written in id order, so a quarantined row's line is its position among the ids.
    const ids = [...want.keys()];
    expect(differences(await byId(name), want, describeId, new Map(quarantined.map((q) => [ids[q.line - 1]!, q])))).toEqual([]);
    expect(quarantined).toEqual([]);
  }

  it('Parquet written by ClickHouse (lists, maps, structs): every value lands as ClickHouse\'s Parquet reader reads it', async () => {
    await roundTrip('Parquet', 'parquet', 'parquet');
  });

  it('CSV written by ClickHouse (text forms [\'a\',\'b\'], {\'k\':\'v\'}, (1,\'x\')): every value lands as CSVWithNames reads it', async () => {
    await roundTrip('CSVWithNames', 'csv', 'csv');
  });

  it('NDJSON inference suggests arrays, nested arrays, objects and maps as such (not String), and the rows load', async () => {
    const key = `${prefix}/inferred/events.ndjson`;
    const events = [
      { id: 1, tags: ['a', 'b'], groups: [['x'], ['y', 'z']], user: { name: 'ada', age: 36 }, mixed: [1, 'q'], scores: [1.5, 2] },
      { id: 2, tags: [], groups: [[]], user: { name: 'it\'s "q"', age: 0 }, mixed: [], scores: [] },
      { id: 3, tags: ['ü✓', '😀', '\\'], groups: [], user: { name: '', age: -1 }, mixed: ['x', 2.5, true], scores: [-0.25] },
    ];
    await put(s3, bucket, key, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const name = uid('tvi');
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${prefix}/inferred/*.ndjson`, format: 'ndjson' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await eventually(`${name} settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === 1 && reportsRunFinished(r.body, `datasource:${name}/1`) ? r.body : null;
    }, 180_000);
    const types = Object.fromEntries(ds.columns.map((x: { name: string; type: string }) => [x.name, x.type.replace(/\s+/g, ' ')]));
    expect(types).toMatchObject({
      tags: 'Array(String)', groups: 'Array(Array(String))', user: 'Tuple( age Int64, name String)', mixed: 'Array(String)', scores: 'Array(Float64)',
    });
    expect(ds.stats).toMatchObject({ rows: 3, quarantinedRows: 0 });
    expect(await select(`SELECT id, tags, groups, user.name AS uname, user.age AS uage, mixed, scores FROM ${quoteIdent(dest.database)}.${quoteIdent(name)} ORDER BY id`)).toEqual([
      { id: 1, tags: ['a', 'b'], groups: [['x'], ['y', 'z']], uname: 'ada', uage: 36, mixed: ['1', 'q'], scores: [1.5, 2] },
      { id: 2, tags: [], groups: [[]], uname: 'it\'s "q"', uage: 0, mixed: [], scores: [] },
      { id: 3, tags: ['ü✓', '😀', '\\'], groups: [], uname: '', uage: -1, mixed: ['x', '2.5', 'true'], scores: [-0.25] },
    ]);
  });

  it('Parquet written by pyarrow (list, large_list, nested list, map, struct, list of struct; nulls everywhere; both list element names): inferred and loaded as ClickHouse\'s Parquet reader reads it', async () => {
    // test/fixtures/parquet/pyarrow_nested{,_legacy}.parquet, written by generate.py (see its README.md):
    // the same rows, with the spec's list element name and with the older writers' one.
    for (const f of ['pyarrow_nested', 'pyarrow_nested_legacy']) {
      await put(s3, bucket, `${prefix}/pyarrow/${f}.parquet`, await readFile(fileURLToPath(new URL(`../fixtures/parquet/${f}.parquet`, import.meta.url))));
    }
    const key = `${prefix}/pyarrow/*.parquet`;
    const name = uid('tvp');
    const res = await c.request('POST', '/v1/datasources', { name, connection: 'local', schedule: '@on-demand', bucketUri: `s3://${bucket}/${prefix}/pyarrow/*.parquet`, format: 'parquet' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await c.request('POST', `/v1/datasources/${name}/sync`);
    const ds = await eventually(`${name} settled`, async () => {
      const r = await c.request('GET', `/v1/datasources/${name}`);
      const f = r.body.stats?.files;
      return f && f.success + f.failure === 2 && reportsRunFinished(r.body, `datasource:${name}/1`) ? r.body : null;
    }, 180_000);
    const columns = ds.columns as Array<{ name: string; type: string }>;
    expect(Object.fromEntries(columns.map((x) => [x.name, x.type.replace(/\s+/g, ' ')]))).toEqual({
      id: 'Nullable(Int64)', tags: 'Array(Nullable(String))', groups: 'Array(Array(Nullable(String)))', attrs: 'Map(String, Nullable(Int64))',
      point: 'Tuple( x Nullable(Float64), label Nullable(String))', items: 'Array(Tuple( sku Nullable(String), qty Nullable(Int32)))',
      big: 'Array(Nullable(Int64))', days: 'Array(Nullable(Date32))', times: "Array(Nullable(DateTime64(3, 'UTC')))",
    });
    expect(ds.stats).toMatchObject({ rows: 8, quarantinedRows: 0 });
    const table = `${quoteIdent(dest.database)}.${quoteIdent(name)}`;
    const read = uid('ref_pyarrow');
    await command(`CREATE TABLE ${read} AS ${table} ENGINE = MergeTree ORDER BY tuple()`);
    const url = `${inject('minioEndpoint')}/${bucket}/${key}`;
    await command(`INSERT INTO ${read} SELECT * FROM s3(${[url, inject('minioUser'), inject('minioPassword'), 'Parquet', columns.map((x) => `${quoteIdent(x.name)} ${x.type}`).join(', ')].map(quoteString).join(', ')})`);
    // Both files hold the same rows, so rows of one id are equal whichever file they came from.
    const want = await select<Record<string, unknown>>(`SELECT * FROM ${read} ORDER BY id`);
    expect(want).toHaveLength(8);
    expect(await select(`SELECT * FROM ${table} ORDER BY id`)).toEqual(want);
    // And the values are the ones generate.py wrote.
    expect(want.find((r) => r.id === 4)).toMatchObject({
      tags: ["it's", 'say "hi"', 'back\\slash', 'ü✓', '😀 𝄞', '', null], groups: [[], ['']], attrs: { '': 0, 'ü✓': null },
      point: { x: -0, label: 'line\nbreak' }, items: [{ sku: null, qty: -2147483648 }], days: ['2299-12-31', null],
      times: ['1969-12-31 23:59:59.999', null],
    });
  });
});
