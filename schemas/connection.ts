import { z } from 'zod';

/** Fields every connection kind shares: where the S3 API is. */
const endpointFields = {
  /** AWS region; S3-compatible stores usually accept any. @default "us-east-1" */
  region: z.string().min(1).default('us-east-1'),
  /** Custom endpoint for S3-compatible stores (MinIO, R2, GCS interop...). */
  endpoint: z.url({ message: 'endpoint must be an http(s) URL' }).optional(),
  /** Path-style addressing (needed by most S3-compatible stores). @default false */
  forcePathStyle: z.boolean().default(false),
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
}

export function summarizeConnection(name: string, c: Connection): ConnectionSummary {
  return { name, kind: c.kind, region: c.region, endpoint: c.endpoint ?? null, forcePathStyle: c.forcePathStyle };
}
