import { SQSClient } from '@aws-sdk/client-sqs';
import type { Connection, SqsQueue } from '../schemas/connection.js';
import { signingConfig } from './connections.js';

/**
 * A client for a connection's SQS queue, signed with the connection's own
 * credentials. Without `sqs.endpoint` the SDK sends each request to the queue
 * URL's host (AWS's endpoint for the queue's region).
 */
export function sqsClient(conn: Connection & { sqs: SqsQueue }): SQSClient {
  return new SQSClient({
    region: conn.sqs.region ?? conn.region,
    endpoint: conn.sqs.endpoint,
    // A failed receive is tried again by the consumer's own loop, with backoff.
    maxAttempts: 3,
    ...signingConfig(conn),
  });
}
