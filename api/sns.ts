import type { Context } from 'hono';
import type { AppEnv } from './context.js';
import { ApiError, badRequest } from './errors.js';
import { snsMessageType, snsSubscribeUrl } from '../schemas/s3-event.js';

const CONFIRM_TIMEOUT_MS = 10_000;

/**
 * The body of a notification. SNS posts its JSON as `text/plain`, so any
 * content type is read as JSON text; what is not JSON is refused.
 */
export async function notificationBody(c: Context<AppEnv>): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest('the notification is not JSON', [{ field: '(body)', message: (err as Error).message }]);
  }
}

/**
 * Answer an SNS SubscriptionConfirmation by GETting its SubscribeURL — only
 * an SNS endpoint (see snsSubscribeUrl), without following redirects, so a
 * caller cannot make the API fetch anything else. null when the body is not
 * an SNS control message; otherwise what the route answers.
 */
export async function handleSnsControl(c: Context<AppEnv>, body: unknown): Promise<{ confirmed: boolean; type: string; topicArn: string | null } | null> {
  const type = snsMessageType(body);
  const topicArn = typeof (body as { TopicArn?: unknown }).TopicArn === 'string' ? (body as { TopicArn: string }).TopicArn : null;
  // Nothing to do when SNS reports an unsubscription; answer so it is not retried.
  if (type === 'UnsubscribeConfirmation') return { confirmed: false, type, topicArn };
  if (type !== 'SubscriptionConfirmation') return null;
  const checked = snsSubscribeUrl(body);
  if ('error' in checked) throw badRequest('the SNS SubscriptionConfirmation is refused', [{ field: 'SubscribeURL', message: checked.error }]);
  const fetchImpl = c.var.deps.fetch ?? fetch;
  let status: number;
  try {
    const res = await fetchImpl(checked.url.href, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(CONFIRM_TIMEOUT_MS) });
    status = res.status;
    await res.body?.cancel().catch(() => undefined);
  } catch (err) {
    throw new ApiError(502, 'Bad Gateway', `confirming the SNS subscription failed: ${(err as Error).name}: ${(err as Error).message}`, [], { cause: err });
  }
  if (status < 200 || status >= 300) throw new ApiError(502, 'Bad Gateway', `SNS answered the subscription confirmation with HTTP ${status}`);
  return { confirmed: true, type, topicArn };
}
