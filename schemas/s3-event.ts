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
