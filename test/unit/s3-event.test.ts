import { describe, expect, it } from 'vitest';
import { extractObjectRefs } from '../../schemas/s3-event.js';

const s3Record = (eventName: string, bucket: string, key: string) => ({ eventName, s3: { bucket: { name: bucket }, object: { key, size: 10, eTag: 'abc' } } });

describe('S3 event notifications', () => {
  it('reads S3/MinIO Records, decoding keys', () => {
    const body = { EventName: 's3:ObjectCreated:Put', Key: 'b/a b.csv', Records: [s3Record('s3:ObjectCreated:Put', 'b', 'dir/a+b%C3%A9.csv')] };
    expect(extractObjectRefs(body)).toEqual([{ bucket: 'b', key: 'dir/a bé.csv', etag: 'abc', size: 10 }]);
  });

  it('skips removals and keeps every created object', () => {
    const body = { Records: [s3Record('ObjectRemoved:Delete', 'b', 'x.csv'), s3Record('ObjectCreated:CompleteMultipartUpload', 'b', 'y.csv')] };
    expect(extractObjectRefs(body).map((r) => r.key)).toEqual(['y.csv']);
  });

  it('unwraps SNS envelopes', () => {
    const body = { Type: 'Notification', Message: JSON.stringify({ Records: [s3Record('ObjectCreated:Put', 'b', 'k.ndjson')] }) };
    expect(extractObjectRefs(body)).toEqual([{ bucket: 'b', key: 'k.ndjson', etag: 'abc', size: 10 }]);
  });

  it('reads EventBridge Object Created events', () => {
    const body = { 'detail-type': 'Object Created', source: 'aws.s3', detail: { bucket: { name: 'b' }, object: { key: 'p/q.parquet', size: 5, etag: 'e' } } };
    expect(extractObjectRefs(body)).toEqual([{ bucket: 'b', key: 'p/q.parquet', etag: 'e', size: 5 }]);
  });

  it('yields nothing for unknown shapes, test events and broken SNS messages', () => {
    expect(extractObjectRefs({ Event: 's3:TestEvent' })).toEqual([]);
    expect(extractObjectRefs({ Message: '{not json' })).toEqual([]);
    expect(extractObjectRefs(null)).toEqual([]);
    expect(extractObjectRefs('text')).toEqual([]);
  });
});
