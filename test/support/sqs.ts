/**
 * SQS for the tests: a client of the run's ElasticMQ, queues with a short
 * visibility timeout, and the S3 event messages AWS sends in each shape a
 * queue receives them (S3 itself, SNS with and without raw delivery,
 * EventBridge).
 */
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { Connection } from '../../schemas/connection.js';
import { minioConnection, uid } from './harness.js';

export function testSqs(): SQSClient {
  return new SQSClient({ endpoint: inject('sqsEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
}

/** A fresh queue (and its dead-letter queue after `maxReceiveCount` receipts, when given). */
export async function createQueue(sqs: SQSClient, opts: { visibilityTimeout?: number; maxReceiveCount?: number } = {}): Promise<{ url: string; dlqUrl: string | null }> {
  const name = uid('q');
  let dlqUrl: string | null = null;
  const attributes: Record<string, string> = { VisibilityTimeout: String(opts.visibilityTimeout ?? 30) };
  if (opts.maxReceiveCount) {
    dlqUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `${name}_dlq` }))).QueueUrl!;
    const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
    attributes.RedrivePolicy = JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: opts.maxReceiveCount });
  }
  const url = (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
  return { url, dlqUrl };
}

/** The run's MinIO as a connection whose S3 events come through `queueUrl`. */
export function queueConnection(queueUrl: string): Connection {
  return { ...minioConnection(), sqs: { queueUrl, endpoint: inject('sqsEndpoint'), waitTimeSeconds: 20 } };
}

export async function send(sqs: SQSClient, queueUrl: string, body: string): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

/** S3 event notification keys are URL-encoded, spaces as '+'. */
const encodeKey = (key: string) => encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+');

/** What S3 sends to a queue (and what SNS delivers raw). */
export function s3Records(bucket: string, key: string, size = 10, eventName = 'ObjectCreated:Put'): string {
  return JSON.stringify({
    Records: [{
      eventVersion: '2.1', eventSource: 'aws:s3', awsRegion: 'us-east-1', eventTime: new Date().toISOString(), eventName,
      userIdentity: { principalId: 'AWS:AIDAEXAMPLE' }, requestParameters: { sourceIPAddress: '127.0.0.1' },
      responseElements: { 'x-amz-request-id': 'C3D13FE58DE4C810', 'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD' },
      s3: {
        s3SchemaVersion: '1.0', configurationId: 'to-sqs',
        bucket: { name: bucket, ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: `arn:aws:s3:::${bucket}` },
        object: { key: encodeKey(key), size, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '0055AED6DCD90281E5' },
      },
    }],
  });
}

/** SNS without raw message delivery: the S3 event is the JSON text of `Message`. */
export function snsEnvelope(message: string): string {
  return JSON.stringify({
    Type: 'Notification', MessageId: randomUUID(), TopicArn: 'arn:aws:sns:us-east-1:123456789012:s3-events', Subject: 'Amazon S3 Notification',
    Message: message, Timestamp: new Date().toISOString(), SignatureVersion: '1', Signature: 'EXAMPLE',
    SigningCertURL: 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem',
    UnsubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:s3-events:0',
  });
}

/** EventBridge's "Object Created" event, as a rule with an SQS target delivers it. */
export function eventBridge(bucket: string, key: string, size = 10): string {
  return JSON.stringify({
    version: '0', id: randomUUID(), 'detail-type': 'Object Created', source: 'aws.s3', account: '123456789012', time: new Date().toISOString(),
    region: 'us-east-1', resources: [`arn:aws:s3:::${bucket}`],
    detail: {
      version: '0', bucket: { name: bucket }, object: { key, size, etag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '00617F08299329D189' },
      'request-id': 'N4N7GDK58NMKJ12R', requester: '123456789012', 'source-ip-address': '127.0.0.1', reason: 'PutObject',
    },
  });
}

/** What S3 sends once a bucket notification to the queue is configured. */
export function s3TestEvent(bucket: string): string {
  return JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Time: new Date().toISOString(), Bucket: bucket, RequestId: '5582815E1AEA5ADF', HostId: '8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE' });
}
