/**
 * Object references from S3 event notifications, in the shapes they arrive
 * in: S3/MinIO `Records` (MinIO's webhook target adds EventName/Key), SNS
 * envelopes whose Message is that JSON, and EventBridge "Object Created"
 * events. Unknown shapes yield nothing rather than an error, so a test ping
 * from a notification service is harmless.
 */
export interface ObjectRef {
  bucket: string;
  key: string;
  etag?: string;
  size?: number;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** S3 event keys are URL-encoded with '+' for spaces. */
export function decodeEventKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

function isCreate(eventName: string | undefined): boolean {
  return !eventName || /ObjectCreated|Object Created|s3:ObjectCreated/i.test(eventName);
}

export function extractObjectRefs(body: unknown, depth = 0): ObjectRef[] {
  if (depth > 3) return [];
  if (Array.isArray(body)) return body.flatMap((b) => extractObjectRefs(b, depth + 1));
  const root = obj(body);
  if (!root) return [];
  // SNS (and SQS carrying SNS): the S3 event is a JSON string.
  const message = str(root.Message) ?? str(root.body);
  if (message) {
    try {
      return extractObjectRefs(JSON.parse(message), depth + 1);
    } catch {
      return [];
    }
  }
  const out: ObjectRef[] = [];
  if (Array.isArray(root.Records)) {
    for (const r of root.Records) {
      const rec = obj(r);
      const s3 = obj(rec?.s3);
      const bucket = str(obj(s3?.bucket)?.name);
      const object = obj(s3?.object);
      const key = str(object?.key);
      if (!bucket || !key || !isCreate(str(rec?.eventName))) continue;
      out.push({ bucket, key: decodeEventKey(key), etag: str(object?.eTag) ?? str(object?.etag), size: typeof object?.size === 'number' ? object.size : undefined });
    }
  }
  // EventBridge.
  const detail = obj(root.detail);
  if (detail && isCreate(str(root['detail-type']))) {
    const bucket = str(obj(detail.bucket)?.name);
    const object = obj(detail.object);
    const key = str(object?.key);
    if (bucket && key) out.push({ bucket, key: decodeEventKey(key), etag: str(object?.etag), size: typeof object?.size === 'number' ? object.size : undefined });
  }
  return out;
}

/**
 * The SNS message types an HTTP(S) subscription receives (header
 * `x-amz-sns-message-type` and body `Type`): `Notification` carries the S3
 * event in `Message`; `SubscriptionConfirmation` must be answered by GETting
 * its `SubscribeURL` before any notification arrives.
 */
export type SnsMessageType = 'SubscriptionConfirmation' | 'UnsubscribeConfirmation' | 'Notification';

export function snsMessageType(body: unknown): SnsMessageType | null {
  const t = str(obj(body)?.Type);
  return t === 'SubscriptionConfirmation' || t === 'UnsubscribeConfirmation' || t === 'Notification' ? t : null;
}

/** SNS endpoints: `sns.<region>.amazonaws.com`, and `.amazonaws.com.cn` in the China regions. */
const SNS_HOST = /^sns\.[a-z]{2}(?:-[a-z]+)+-\d+\.amazonaws\.com(?:\.cn)?$/;

/**
 * The SubscribeURL of a SubscriptionConfirmation, if it is one SNS itself
 * would send: https on the default port to an SNS endpoint, no credentials.
 * Anything else is refused with the reason, so the API never fetches a URL
 * a caller chose (SSRF).
 */
export function snsSubscribeUrl(body: unknown): { url: URL } | { error: string } {
  const raw = obj(body)?.SubscribeURL;
  if (typeof raw !== 'string' || raw === '') return { error: 'a SubscriptionConfirmation needs a SubscribeURL string' };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { error: 'not a URL' };
  }
  if (url.protocol !== 'https:') return { error: `must be an https:// URL (got ${url.protocol})` };
  if (url.username || url.password) return { error: 'must not carry credentials' };
  if (url.port !== '') return { error: `must use the default https port (got ${url.port})` };
  if (!SNS_HOST.test(url.hostname)) return { error: `must be on sns.<region>.amazonaws.com or sns.<region>.amazonaws.com.cn (got ${url.hostname.slice(0, 253)})` };
  return { url };
}

/**
 * What one SQS message body is, for a queue fed by S3 (directly, through SNS
 * with or without raw delivery, or through EventBridge):
 * - `objects`: a notification S3 sends; `refs` are its created objects (none
 *   for, say, a delete event: it is understood and acknowledged all the same);
 * - `test`: the `s3:TestEvent` S3 sends when a notification is configured;
 * - `unparseable`: anything else. Such a message is never deleted, so the
 *   queue's visibility timeout and redrive policy decide its fate (a
 *   dead-letter queue), and no event is dropped on a misreading.
 */
export type QueueMessage =
  | { kind: 'objects'; refs: ObjectRef[] }
  | { kind: 'test' }
  | { kind: 'unparseable'; reason: string };

export function classifyQueueMessage(body: string | undefined): QueueMessage {
  if (body === undefined || body.trim() === '') return { kind: 'unparseable', reason: 'empty body' };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { kind: 'unparseable', reason: 'not JSON' };
  }
  let root = obj(json);
  // SNS without raw delivery: the S3 (or EventBridge) event is the JSON text of `Message`.
  if (root && root.Type === 'Notification' && typeof root.Message === 'string') {
    try {
      root = obj(JSON.parse(root.Message));
    } catch {
      return { kind: 'unparseable', reason: 'an SNS notification whose Message is not JSON' };
    }
  }
  if (!root) return { kind: 'unparseable', reason: 'not a JSON object' };
  if (root.Event === 's3:TestEvent') return { kind: 'test' };
  if (Array.isArray(root.Records)) {
    const bad = root.Records.findIndex((r) => !str(obj(obj(obj(r)?.s3)?.bucket)?.name) || !str(obj(obj(obj(r)?.s3)?.object)?.key));
    if (bad >= 0) return { kind: 'unparseable', reason: `Records[${bad}] has no s3.bucket.name or s3.object.key` };
    return { kind: 'objects', refs: extractObjectRefs(root) };
  }
  if (typeof root['detail-type'] === 'string' && obj(root.detail)) {
    if (!/^Object /.test(root['detail-type'])) return { kind: 'unparseable', reason: `an EventBridge event of type '${root['detail-type'].slice(0, 64)}', not an S3 object event` };
    const detail = obj(root.detail)!;
    if (!str(obj(detail.bucket)?.name) || !str(obj(detail.object)?.key)) return { kind: 'unparseable', reason: 'an EventBridge S3 event without detail.bucket.name or detail.object.key' };
    return { kind: 'objects', refs: extractObjectRefs(root) };
  }
  return { kind: 'unparseable', reason: 'neither S3 Records, an SNS notification, nor an EventBridge S3 event' };
}
