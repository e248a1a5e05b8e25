import { z } from 'zod';

/** The SQS queue of a connection: where its URL is, and the SQS API to reach it through. */
export const sqsQueueSchema = z.strictObject({
  /** `https://sqs.<region>.amazonaws.com/<account>/<queue>` (or an SQS-compatible server's queue URL). */
  queueUrl: z.url({ message: 'sqs.queueUrl must be the http(s) URL of the queue' }).refine((u) => URL.canParse(u) && new URL(u).pathname.split('/').some(Boolean), 'sqs.queueUrl must name a queue (…/<account>/<queue>)'),
  /** SQS API endpoint for SQS-compatible servers; unset = AWS's endpoint for the region. */
  endpoint: z.url({ message: 'sqs.endpoint must be an http(s) URL' }).optional(),
  /** Region of the queue. @default the connection's region */
  region: z.string().min(1).optional(),
  /** Seconds a receive waits for a message (SQS's long poll, at most 20). @default 20 */
  waitTimeSeconds: z.number().int().min(1).max(20).default(20),
});
export type SqsQueue = z.infer<typeof sqsQueueSchema>;

/** Fields every connection kind shares: where the S3 API is. */
const endpointFields = {
  /** AWS region; S3-compatible stores usually accept any. @default "us-east-1" */
  region: z.string().min(1).default('us-east-1'),
  /** Custom endpoint for S3-compatible stores (MinIO, R2, GCS interop...). */
  endpoint: z.url({ message: 'endpoint must be an http(s) URL' }).optional(),
  /** Path-style addressing (needed by most S3-compatible stores). @default false */
  forcePathStyle: z.boolean().default(false),
  /**
   * An SQS queue that receives this bucket's S3 event notifications (S3 -> SQS,
   * S3 -> SNS -> SQS, or EventBridge -> SQS). Workers long-poll it with the
   * connection's credentials and import each new object at once.
   */
  sqs: sqsQueueSchema.optional(),
};

const staticKeys = z.strictObject({
  kind: z.literal('static'),
  accessKeyId: z.string().min(1, 'accessKeyId is required for kind static'),
  secretAccessKey: z.string().min(1, 'secretAccessKey is required for kind static'),
  sessionToken: z.string().optional(),
  ...endpointFields,
});

const defaultChain = z.strictObject({ kind: z.literal('default-chain'), ...endpointFields });

const assumeRole = z.strictObject({
  kind: z.literal('assume-role'),
  roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'roleArn must be an IAM role ARN'),
  externalId: z.string().min(2).max(1224).optional(),
  sessionName: z.string().regex(/^[\w+=,.@-]{2,64}$/).default('s3-clickhouse-connector'),
  ...endpointFields,
});

const anonymous = z.strictObject({ kind: z.literal('anonymous'), ...endpointFields });

export const connectionSchema = z.discriminatedUnion('kind', [staticKeys, defaultChain, assumeRole, anonymous]);
export type Connection = z.infer<typeof connectionSchema>;

export const connectionsFileSchema = z.strictObject({
  connections: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'connection names are 1-128 of A-Z a-z 0-9 _ . -'), connectionSchema),
});

/** What the API may show about a connection: never a secret. */
export interface ConnectionSummary {
  name: string;
  kind: Connection['kind'];
  region: string;
  endpoint: string | null;
  forcePathStyle: boolean;
  /** The SQS queue whose S3 events it takes, if any (a queue URL is no secret). */
  sqsQueueUrl: string | null;
}

export function summarizeConnection(name: string, c: Connection): ConnectionSummary {
  return { name, kind: c.kind, region: c.region, endpoint: c.endpoint ?? null, forcePathStyle: c.forcePathStyle, sqsQueueUrl: c.sqs?.queueUrl ?? null };
}
