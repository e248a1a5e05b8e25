import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { eventually, put, sql, uid, type TestConnector, useTestStack } from '../support/harness.js';
import { reportsRunFinished } from '../support/workflow-wait.js';

function csv(rows: Array<[string, number, string]>): string {
  return 'timestamp,id,name\n' + rows.map(([t, id, n]) => `${t},${id},${n}`).join('\n') + '\n';
}

describe('one data source, end to end (Temporal dev server + MinIO + chDB)', () => {
  let c: TestConnector;
  let s3: S3Client;
  let bucket: string;

  useTestStack((stack) => ({ c, s3, bucket } = stack));

  async function waitForIdleAfter(name: string, runs: number) {
    return eventually(`data source ${name} to finish run ${runs}`, async () => {
      const res = await c.request('GET', `/v1/datasources/${name}`);
      const s = res.body;
      // The workflow's own word that run `runs` is over (its runs are numbered datasource:<name>/1, /2, ...).
      return res.status === 200 && reportsRunFinished(s, `datasource:${name}/${runs}`) && (await runsCount(name)) >= runs ? s : null;
    });
  }
  async function runsCount(name: string) {
    const res = await c.request('GET', `/v1/datasources/${name}/runs`);
    return res.body.items.length as number;
  }

  it('imports CSV (plain and gzipped) exactly once, and picks up a new file on the next sync', async () => {
    const name = uid('events');
    await put(s3, bucket, 'events/2024/01/a.csv', csv([['2024-01-01 00:00:00', 1, 'alpha'], ['2024-01-01 01:00:00', 2, 'beta']]));
    await put(s3, bucket, 'events/2024/02/b.csv', csv([['2024-02-01 00:00:00', 3, 'gamma']]));
    await put(s3, bucket, 'events/2024/03/c.csv.gz', gzipSync(csv([['2024-03-01 00:00:00', 4, 'delta'], ['2024-03-02 00:00:00', 5, 'epsilon'], ['2024-03-03 00:00:00', 6, 'zeta']])));
    await put(s3, bucket, 'events/2024/03/ignored.json', '{"not":"matched"}');

    const created = await c.request('POST', '/v1/datasources', {
      name,
      connection: 'local',
      bucketUri: `s3://${bucket}/events/**/*.csv{,.gz}`,
      format: 'csv',
      schedule: '@on-demand',
      columns: [
        { name: 'timestamp', type: 'DateTime' },
        { name: 'id', type: 'UInt64' },
        { name: 'name', type: 'String' },
      ],
      engine: { partitionKey: 'toYYYYMM(timestamp)', sortingKey: 'timestamp', ttl: 'timestamp + INTERVAL 50 YEAR' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.name).toBe(name);

    // The table exists with the spec's engine clauses.
    const ddl = await eventually('table to exist', async () => (await sql<{ statement: string }>(c, `SHOW CREATE TABLE ${name}`))[0]?.statement);
    expect(ddl).toMatch(/PARTITION BY toYYYYMM\(timestamp\)/);
    expect(ddl).toMatch(/ORDER BY timestamp/);
    expect(ddl).toMatch(/TTL timestamp \+ (toIntervalYear\(50\)|INTERVAL 50 YEAR)/);

    expect((await c.request('POST', `/v1/datasources/${name}/sync`)).status).toBe(202);
    await waitForIdleAfter(name, 1);
    const first = await sql<{ n: string; ids: number[] }>(c, `SELECT count() AS n, groupArray(id) AS ids FROM (SELECT id FROM ${name} ORDER BY id)`);
    expect(Number(first[0]!.n)).toBe(6);
    expect(first[0]!.ids.map(Number)).toEqual([1, 2, 3, 4, 5, 6]);

    const ds = await c.request('GET', `/v1/datasources/${name}`);
    expect(ds.body.stats.files.success).toBe(3);
    expect(ds.body.stats.rows).toBe(6);

    // A second sync finds nothing new.
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForIdleAfter(name, 2);
    expect(Number((await sql<{ n: string }>(c, `SELECT count() AS n FROM ${name}`))[0]!.n)).toBe(6);

    // A new file is imported on the next sync, and only it.
    await put(s3, bucket, 'events/2024/04/d.csv', csv([['2024-04-01 00:00:00', 7, 'eta'], ['2024-04-02 00:00:00', 8, 'theta']]));
    await c.request('POST', `/v1/datasources/${name}/sync`);
    await waitForIdleAfter(name, 3);
    const rows = await sql<{ id: string; name: string }>(c, `SELECT id, name FROM ${name} ORDER BY id`);
    expect(rows.map((r) => Number(r.id))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(rows.at(-1)!.name).toBe('theta');

    const metrics = await c.request('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.body).toContain(`s3ch_files{datasource="${name}",status="success"} 4`);
    expect(metrics.body).toContain(`s3ch_rows_loaded_total{datasource="${name}"} 8`);
    expect(metrics.body).toMatch(new RegExp(`s3ch_runs_total\\{datasource="${name}"\\} 3`));

    const files = await c.request('GET', `/v1/datasources/${name}/files?status=success`);
    expect(files.body.items.map((f: { key: string }) => f.key).sort()).toEqual([
      'events/2024/01/a.csv', 'events/2024/02/b.csv', 'events/2024/03/c.csv.gz', 'events/2024/04/d.csv',
    ]);
  });
});
