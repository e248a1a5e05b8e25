import { describe, expect, it } from 'vitest';
import { dataSourceSpecSchema, hivePartitions, normalizeSpec } from '../../schemas/datasource.js';
import { DatasourceFileError, readDatasourceFile, toDatasourceFile } from '../../schemas/datasource-file.js';
import { buildImportPlan } from '../../activities/ddl.js';
import { partitionColumns } from '../../activities/schema.js';
import { objectParams } from '../../clickhouse/import-statement.js';

/** Columns that take their value from the object: spec, .datasource syntax, key parsing and the import plan. */

const base = { name: 'events', connection: 'local', bucketUri: 's3://bucket/events/**/*.csv', format: 'csv' };

function issues(spec: Record<string, unknown>) {
  const r = dataSourceSpecSchema.safeParse(spec);
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('spec: from and partition', () => {
  it('accepts every object value and a hive partition name', () => {
    const columns = [
      { name: 'id', type: 'UInt32' },
      ...(['key', 'file', 'etag', 'size', 'lastModified', 'line', 'hive'] as const).map((from) => ({ name: `c_${from}`, type: 'String', from })),
      { name: 'day', type: 'Date', from: 'hive', partition: 'dt' },
    ];
    expect(issues({ ...base, columns })).toEqual([]);
  });

  it('refuses a path or source on an object column, partition without hive, an unknown value, and no content column', () => {
    expect(issues({ ...base, format: 'ndjson', columns: [{ name: 'id', type: 'UInt32' }, { name: 'k', type: 'String', from: 'key', path: '$.k' }] })).toEqual([
      { path: 'columns.1.path', message: "path reads the file's content; a column with from: key takes its value from the object" },
    ]);
    expect(issues({ ...base, columns: [{ name: 'id', type: 'UInt32' }, { name: 'k', type: 'String', from: 'etag', source: 'x' }] })[0]!.path).toBe('columns.1.source');
    expect(issues({ ...base, columns: [{ name: 'id', type: 'UInt32' }, { name: 'k', type: 'String', from: 'key', partition: 'dt' }] })).toEqual([
      { path: 'columns.1.partition', message: 'partition is for columns with from: hive' },
    ]);
    expect(issues({ ...base, columns: [{ name: 'id', type: 'UInt32' }, { name: 'k', type: 'String', from: 'bucket' }] })[0]!.path).toBe('columns.1.from');
    expect(issues({ ...base, columns: [{ name: 'id', type: 'UInt32' }, { name: 'd', type: 'Date', from: 'hive', partition: 'a/b' }] })[0]!.path).toBe('columns.1.partition');
    expect(issues({ ...base, columns: [{ name: 'k', type: 'String', from: 'key' }] })).toEqual([
      { path: 'columns', message: 'at least one column must be read from the files (a column without from)' },
    ]);
  });
});

describe('hive partitions of a key', () => {
  it('reads name=value folders in order, percent-decoded, first of a name wins, never the file name', () => {
    expect(hivePartitions('events/dt=2024-05-01/region=eu%2Fwest/ts=2024-05-01 10%3A00/dt=2099-01-01/part=9.csv')).toEqual([
      { name: 'dt', value: '2024-05-01' },
      { name: 'region', value: 'eu/west' },
      { name: 'ts', value: '2024-05-01 10:00' },
    ]);
    // Not valid percent-encoding: kept as written.
    expect(hivePartitions('a=100%/b.csv')).toEqual([{ name: 'a', value: '100%' }]);
    expect(hivePartitions('plain/keys/x.csv')).toEqual([]);
  });

  it('inference suggests typed hive columns the content does not already have', () => {
    expect(partitionColumns('e/dt=2024-05-01/hour=07/n=42/at=2024-05-01T10:00:00Z/region=eu/id=1/x.parquet', [{ name: 'id' }])).toEqual([
      { name: 'dt', type: 'Date', from: 'hive' },
      { name: 'hour', type: 'String', from: 'hive' },
      { name: 'n', type: 'Int64', from: 'hive' },
      { name: 'at', type: 'DateTime', from: 'hive' },
      { name: 'region', type: 'String', from: 'hive' },
    ]);
  });
});

describe('.datasource: s3ch comments', () => {
  const file = (schema: string) => `SCHEMA >\n${schema}\n\nIMPORT_SERVICE s3\nIMPORT_CONNECTION_NAME local\nIMPORT_BUCKET_URI s3://bucket/events/**/*.csv\n`;

  it('reads a trailing comment on the column line, before or after the comma, and partition=', () => {
    const { spec } = readDatasourceFile(
      file('    `id` UInt32,\n    `src` String, -- s3ch:from=key\n    `ln` UInt64 -- s3ch:from=line\n    , `day` Date -- S3CH:from=hive partition=dt\n    `ok` String -- an ordinary comment'),
      { name: 'events' },
    );
    expect(spec.columns).toEqual([
      { name: 'id', type: 'UInt32' },
      { name: 'src', type: 'String', from: 'key' },
      { name: 'ln', type: 'UInt64', from: 'line' },
      { name: 'day', type: 'Date', from: 'hive', partition: 'dt' },
      { name: 'ok', type: 'String' },
    ]);
  });

  it('a line with two columns gives the comment to the last one', () => {
    const { spec } = readDatasourceFile(file('    `id` UInt32, `m` DateTime -- s3ch:from=lastModified'), { name: 'events' });
    expect(spec.columns).toEqual([{ name: 'id', type: 'UInt32' }, { name: 'm', type: 'DateTime', from: 'lastModified' }]);
  });

  it('refuses a misplaced, unknown or incomplete s3ch comment, naming the line', () => {
    const err = (schema: string) => {
      try {
        readDatasourceFile(file(schema), { name: 'events' });
      } catch (e) {
        if (e instanceof DatasourceFileError) return { line: e.line, reason: e.reason };
        throw e;
      }
      throw new Error('no error');
    };
    expect(err('    -- s3ch:from=key\n    `src` String')).toEqual({ line: 2, reason: 'an s3ch: comment must end the line of the column it is about, e.g. `src` String -- s3ch:from=key' });
    expect(err('    `src` String -- s3ch:from=bucket')).toEqual({ line: 2, reason: 's3ch:from=bucket is not one of key, file, etag, size, lastModified, line, hive' });
    expect(err('    `src` String -- s3ch:partition=dt')).toEqual({ line: 2, reason: 'an s3ch: comment needs from=<key|file|etag|size|lastModified|line|hive>' });
    expect(err('    `src` String -- s3ch:from=key partition=dt')).toEqual({ line: 2, reason: 'partition= is for s3ch:from=hive' });
    expect(err('    `src` String -- s3ch:from=key the key')).toMatchObject({ line: 2 });
  });

  it('writes object columns as trailing comments and reads them back to the same spec', () => {
    const spec = {
      ...base,
      format: 'csv' as const,
      columns: [
        { name: 'id', type: 'UInt32' },
        { name: 'src', type: 'String', from: 'key' as const },
        { name: 'day', type: 'Date', from: 'hive' as const, partition: 'dt' },
        { name: 'ln', type: 'UInt64', from: 'line' as const },
      ],
    };
    const text = toDatasourceFile(spec);
    expect(text).toContain('    `src` String, -- s3ch:from=key\n    `day` Date, -- s3ch:from=hive partition=dt\n    `ln` UInt64 -- s3ch:from=line\n');
    expect(readDatasourceFile(text, { name: 'events' }).spec.columns).toEqual(spec.columns);
  });
});

describe('import plan with object columns', () => {
  const plan = (columns: Record<string, unknown>[], extra: Record<string, unknown> = {}) => {
    const spec = normalizeSpec(dataSourceSpecSchema.parse({ ...base, ...extra, columns }));
    return buildImportPlan('db', spec, spec.columns!, (spec.format === 'auto' ? 'csv' : spec.format) as 'csv', 'events');
  };

  it('reads only content columns from the file; positional CSV columns skip object columns', () => {
    const p = plan(
      [{ name: 'src', type: 'String', from: 'key' }, { name: 'a', type: 'Int32' }, { name: 'ln', type: 'UInt64', from: 'line' }, { name: 'b', type: 'String' }],
      { csv: { header: false } },
    );
    expect(p.structure).toBe('`c1` Nullable(String), `c2` Nullable(String)');
    // The line column is not inserted: the conversion view reads _line.
    expect(p.insertInto).toBe('INSERT INTO `db`.`events_s3ch_landing` (r0, r1, r3, _row_error, _raw_line, _file, _etag, _line)');
    expect(p.select.startsWith('{key:String}, `c1`, `c2`, ')).toBe(true);
    expect(p.create.at(-1)).toContain('toString(_line)');
  });

  it('a hive column is read from the key with its name escaped, and quarantined with the reason', () => {
    const p = plan([{ name: 'id', type: 'Int32' }, { name: 'day', type: 'Date', from: 'hive', partition: 'd.t' }]);
    expect(p.select).toContain("extract({key:String}, '(?:^|/)d\\\\.t=([^/]*)/')");
    const convert = p.create.at(-1)!;
    expect(convert).toContain("'the key has no value for partition d.t (a folder d.t=<value>)'");
    expect(convert).toContain("concat('cannot convert to Date: d.t=', ifNull(r1, ''), ' in the key')");
    // The raw text of a quarantined row is the file's: object columns are left out.
    expect(convert).toContain("toJSONString(map('id', r0))");
  });

  it('NDJSON and Parquet read only content columns', () => {
    const cols = [{ name: 'id', type: 'Int32' }, { name: 'f', type: 'String', from: 'file' }, { name: 'sz', type: 'UInt64', from: 'size' }];
    const nd = plan(cols, { format: 'ndjson' });
    const content = nd.select.split(', {fileName:String}, {size:String}, ')[0]!;
    // The line's keys read: only `id` (a Tuple of one element), never the object columns.
    expect(content).toContain("'Tuple(`id` Nullable(String))'");
    expect(content).not.toMatch(/`(f|sz)` Nullable/);
    const pq = plan(cols, { format: 'parquet' });
    expect(pq.structure).toBe('`id` Nullable(String)');
  });
});

describe('object values of a file', () => {
  it('file name is the key\'s last segment or the zip entry; last-modified in whole UTC seconds', () => {
    const file = { key: 'a/b/part-1.csv', size: 42, lastModified: '2024-05-01T10:00:00.789Z' };
    expect(objectParams(file)).toEqual({ key: 'a/b/part-1.csv', fileName: 'part-1.csv', size: '42', lastModified: '2024-05-01T10:00:00Z' });
    expect(objectParams(file, 'dir/inner.csv').fileName).toBe('dir/inner.csv');
    expect(objectParams({ ...file, lastModified: '' }).lastModified).toBe('');
  });
});
