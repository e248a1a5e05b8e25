import { describe, expect, it } from 'vitest';
import { bucketUrl, keyPath, objectUrl } from '../../s3/object-url.js';
import { s3Source, scrubSecrets, scrubText } from '../../clickhouse/s3-source.js';
import { insertStatement } from '../../clickhouse/import-statement.js';

describe('object URLs for s3()', () => {
  it('path-style endpoint: <endpoint>/<bucket>/<key>, the key percent-encoded per segment', () => {
    expect(objectUrl({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, region: 'us-east-1' }, 'demo', 'a b/c+d=e%f ü.csv')).toEqual({
      url: 'http://127.0.0.1:9000/demo/a%20b/c%2Bd%3De%25f%20%C3%BC.csv',
      path: 'demo/a b/c+d=e%f ü.csv',
      globbed: false,
    });
  });

  it('virtual-hosted endpoint and AWS regional URLs', () => {
    expect(bucketUrl({ endpoint: 'https://s3.example.com', forcePathStyle: false, region: 'x' }, 'b1')).toBe('https://b1.s3.example.com');
    expect(bucketUrl({ endpoint: undefined, forcePathStyle: false, region: 'eu-west-1' }, 'b1')).toBe('https://b1.s3.eu-west-1.amazonaws.com');
    // Dotted bucket names break TLS with virtual hosting: path style on the regional endpoint.
    expect(bucketUrl({ endpoint: undefined, forcePathStyle: false, region: 'eu-west-1' }, 'my.bucket')).toBe('https://s3.eu-west-1.amazonaws.com/my.bucket');
  });

  it('glob characters become the one-character wildcard (ClickHouse decodes before it expands globs) and are reported', () => {
    expect(keyPath('d/a*b?{x,y}.csv')).toEqual({ path: 'd/a%3Fb%3F%3Fx%2Cy%3F.csv', globbed: true });
    expect(keyPath('d/plain.csv')).toEqual({ path: 'd/plain.csv', globbed: false });
  });
});

describe('credentials in s3() and in errors', () => {
  const credentials = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: "se'cret/KEY+x", sessionToken: 'TOKEN-123456' };

  it('static or temporary keys go into the SQL text; anonymous reads use NOSIGN', () => {
    const src = s3Source({ url: 'http://h/b/k', credentials, format: 'CSV', structure: 'a String', compression: 'gzip' });
    expect(src.sql).toBe("s3('http://h/b/k', 'AKIAEXAMPLE', 'se\\'cret/KEY+x', 'TOKEN-123456', 'CSV', 'a String', 'gzip')");
    expect(src.secrets).toEqual(["se'cret/KEY+x", 'TOKEN-123456', 'AKIAEXAMPLE']);
    expect(s3Source({ url: 'http://h/b/k', credentials: null, format: 'CSV', structure: 'a String', compression: 'none' }).sql).toBe("s3('http://h/b/k', NOSIGN, 'CSV', 'a String', 'none')");
  });

  it('scrubs every secret, as written, as quoted in SQL and URL-encoded, from messages, stacks and causes', () => {
    const src = s3Source({ url: 'http://h/b/k', credentials, format: 'CSV', structure: 'a String', compression: 'none' });
    const cause = new Error(`Syntax error near ${src.sql}`);
    const err = new Error(`failed: ${encodeURIComponent(credentials.secretAccessKey)} and ${credentials.sessionToken}`, { cause });
    scrubSecrets(err, src.secrets);
    for (const text of [err.message, err.stack!, cause.message, cause.stack!]) {
      for (const secret of src.secrets) expect(text.includes(secret), text).toBe(false);
      expect(text.includes('se\\\'cret')).toBe(false);
    }
    expect(cause.message).toContain('[HIDDEN]');
    expect(scrubText('nothing here', src.secrets)).toBe('nothing here');
  });
});

describe('import statements', () => {
  it('are concatenated: $ patterns in names, delimiters and sources stay as written', () => {
    const sql = insertStatement({
      insertInto: 'INSERT INTO `t$&` (r0)',
      select: "`Total $'`",
      source: "s3('http://h/b/$&.csv', NOSIGN, 'CSV', '`Total $\\'` Nullable(String)', 'none')",
      globbed: true,
      checkEtag: true,
      settings: { format_csv_delimiter: '$' },
    });
    expect(sql.startsWith("INSERT INTO `t$&` (r0) SETTINGS format_csv_delimiter = '$' SELECT `Total $'`, {file:String}, ")).toBe(true);
    expect(sql).toContain("FROM s3('http://h/b/$&.csv', NOSIGN, 'CSV', '`Total $\\'` Nullable(String)', 'none') WHERE _path = {path:String}");
  });
});
