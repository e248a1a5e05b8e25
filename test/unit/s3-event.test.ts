import { describe, expect, it } from 'vitest';
import { extractObjectRefs, snsMessageType, snsSubscribeUrl } from '../../schemas/s3-event.js';

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

  it('a SubscriptionConfirmation yields no objects (its Message is prose)', () => {
    expect(extractObjectRefs({ Type: 'SubscriptionConfirmation', Message: 'You have chosen to subscribe to the topic', SubscribeURL: 'https://sns.us-east-1.amazonaws.com/' })).toEqual([]);
  });
});

describe('SNS subscriptions', () => {
  it('tells the message types apart', () => {
    expect(snsMessageType({ Type: 'SubscriptionConfirmation' })).toBe('SubscriptionConfirmation');
    expect(snsMessageType({ Type: 'UnsubscribeConfirmation' })).toBe('UnsubscribeConfirmation');
    expect(snsMessageType({ Type: 'Notification', Message: '{}' })).toBe('Notification');
    expect(snsMessageType({ Records: [] })).toBeNull();
    expect(snsMessageType({ Type: 'subscriptionconfirmation' })).toBeNull();
    expect(snsMessageType(null)).toBeNull();
    expect(snsMessageType([{ Type: 'SubscriptionConfirmation' }])).toBeNull();
  });

  it('accepts SubscribeURLs on SNS endpoints only: https, default port, no credentials, sns.<region>.amazonaws.com[.cn]', () => {
    for (const ok of [
      'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:1:t&Token=abc',
      'https://sns.eu-central-1.amazonaws.com/',
      'https://sns.us-gov-west-1.amazonaws.com/x',
      'https://sns.cn-northwest-1.amazonaws.com.cn/?Action=ConfirmSubscription',
      'https://SNS.AP-SOUTHEAST-2.AMAZONAWS.COM/',
    ]) {
      const r = snsSubscribeUrl({ SubscribeURL: ok });
      expect('url' in r ? r.url.href : r.error, ok).toBe(new URL(ok).href);
    }
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /needs a SubscribeURL/],
      [42, /needs a SubscribeURL/],
      ['', /needs a SubscribeURL/],
      ['not a url', /not a URL/],
      ['http://sns.us-east-1.amazonaws.com/', /https/],
      ['ftp://sns.us-east-1.amazonaws.com/', /https/],
      ['https://sns.us-east-1.amazonaws.com:444/', /default https port/],
      ['https://a:b@sns.us-east-1.amazonaws.com/', /credentials/],
      ['https://sns.us-east-1.amazonaws.com@evil.example/', /credentials/],
      ['https://sns.us-east-1.amazonaws.com.evil.example/', /sns\.<region>/],
      ['https://evil.example/sns.us-east-1.amazonaws.com', /sns\.<region>/],
      ['https://sns.amazonaws.com/', /sns\.<region>/],
      ['https://sqs.us-east-1.amazonaws.com/', /sns\.<region>/],
      ['https://sns.us-east-1.amazonaws.com./', /sns\.<region>/],
      ['https://169.254.169.254/latest/meta-data/', /sns\.<region>/],
      ['https://[::1]/', /sns\.<region>/],
    ];
    for (const [url, reason] of cases) {
      const r = snsSubscribeUrl({ SubscribeURL: url });
      expect('error' in r ? r.error : `accepted ${String(url)}`, String(url)).toMatch(reason);
    }
  });
});

