import { describe, expect, it } from 'vitest';
import { classifyQueueMessage } from '../../schemas/s3-event.js';
import { routeObjectRefs } from '../../schemas/event-routing.js';
import { envSchema, loadConnections } from '../../schemas/config.js';

const records = (bucket: string, key: string, eventName = 'ObjectCreated:Put') =>
  JSON.stringify({ Records: [{ eventSource: 'aws:s3', eventName, s3: { bucket: { name: bucket }, object: { key, size: 3, eTag: 'e' } } }] });

describe('SQS message bodies', () => {
  it('reads S3 Records, SNS envelopes (not raw) and EventBridge Object Created events', () => {
    const ref = { bucket: 'b', key: 'in/a b.csv', etag: 'e', size: 3 };
    expect(classifyQueueMessage(records('b', 'in/a+b.csv'))).toEqual({ kind: 'objects', refs: [ref] });
    expect(classifyQueueMessage(JSON.stringify({ Type: 'Notification', Message: records('b', 'in/a+b.csv') }))).toEqual({ kind: 'objects', refs: [ref] });
    const eb = { version: '0', 'detail-type': 'Object Created', source: 'aws.s3', detail: { bucket: { name: 'b' }, object: { key: 'in/x.csv', size: 3, etag: 'e' } } };
    expect(classifyQueueMessage(JSON.stringify(eb))).toEqual({ kind: 'objects', refs: [{ bucket: 'b', key: 'in/x.csv', etag: 'e', size: 3 }] });
  });

  it('understands what it acknowledges without importing: test events, deletions', () => {
    expect(classifyQueueMessage(JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'b' }))).toEqual({ kind: 'test' });
    expect(classifyQueueMessage(JSON.stringify({ Type: 'Notification', Message: JSON.stringify({ Event: 's3:TestEvent' }) }))).toEqual({ kind: 'test' });
    expect(classifyQueueMessage(records('b', 'x.csv', 'ObjectRemoved:Delete'))).toEqual({ kind: 'objects', refs: [] });
    expect(classifyQueueMessage(JSON.stringify({ 'detail-type': 'Object Deleted', detail: { bucket: { name: 'b' }, object: { key: 'x' } } }))).toEqual({ kind: 'objects', refs: [] });
  });

  it('refuses, with the reason, what is no S3 event', () => {
    for (const [body, reason] of [
      ['', /empty/],
      ['{"a":', /not JSON/],
      ['[1,2]', /not a JSON object/],
      ['{"hello":"world"}', /neither S3 Records/],
      [JSON.stringify({ Type: 'Notification', Message: 'plain text' }), /Message is not JSON/],
      [JSON.stringify({ Records: [{ s3: { bucket: { name: 'b' } } }] }), /Records\[0\] has no/],
      [JSON.stringify({ 'detail-type': 'EC2 Instance State-change Notification', detail: {} }), /not an S3 object event/],
    ] as const) {
      const got = classifyQueueMessage(body);
      expect(got.kind, body).toBe('unparseable');
      expect(got.kind === 'unparseable' && got.reason).toMatch(reason);
    }
  });
});

describe('event routing', () => {
  const ds = [
    { name: 'a', bucketUri: 's3://bkt/in/*.csv' },
    { name: 'b', bucketUri: 's3://bkt/in/**' },
    { name: 'c', bucketUri: 's3://other/in/*.csv' },
  ];
  it('sends each object to every data source whose bucket and glob take it', () => {
    const route = routeObjectRefs(ds, [{ bucket: 'bkt', key: 'in/x.csv' }, { bucket: 'bkt', key: 'in/deep/y.csv' }, { bucket: 'bkt', key: 'in/x.csv' }]);
    expect(Object.fromEntries(route)).toEqual({ a: ['in/x.csv'], b: ['in/x.csv', 'in/deep/y.csv'] });
  });
  it('a data source whose bucket URI no longer parses concerns nothing, and holds up no other', () => {
    expect(Object.fromEntries(routeObjectRefs([{ name: 'bad', bucketUri: 's3://b/x' }, ...ds], [{ bucket: 'bkt', key: 'in/x.csv' }]))).toEqual({ a: ['in/x.csv'], b: ['in/x.csv'] });
  });
  it('refuses dot segments and other buckets', () => {
    expect(routeObjectRefs(ds, [{ bucket: 'bkt', key: 'in/../in/x.csv' }, { bucket: 'xyz', key: 'in/x.csv' }]).size).toBe(0);
  });
});

describe('a connection with an SQS queue', () => {
  const conn = (sqs: unknown) => envSchema.parse({ S3CH_CONNECTIONS: JSON.stringify({ connections: { aws: { kind: 'default-chain', region: 'eu-west-1', sqs } } }) });
  it('takes a queue URL, defaults the long poll to 20 s', () => {
    const c = loadConnections(conn({ queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/s3-events' })).get('aws')!;
    expect(c.sqs).toEqual({ queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/s3-events', waitTimeSeconds: 20 });
  });
  it('names the field and the reason of a bad queue', () => {
    expect(() => loadConnections(conn({ queueUrl: 'not a url' }))).toThrow(/connections\.aws\.sqs\.queueUrl: sqs\.queueUrl must be/);
    expect(() => loadConnections(conn({ queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/q', waitTimeSeconds: 30 }))).toThrow(/connections\.aws\.sqs\.waitTimeSeconds/);
    expect(() => loadConnections(conn({ queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/q', visibility: 3 }))).toThrow(/Unrecognized key/);
  });
});
