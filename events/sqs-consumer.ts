/**
 * The SQS queue consumer: one long poll per queue per process, whatever the
 * number of data sources, routing each S3 event to every data source of the
 * queue's connection whose bucket and glob take the object.
 *
 * Delivery: a message is deleted only after every data source it concerns
 * accepted the `sync` signal with its keys (Temporal has them durably in the
 * workflow's history, even while no worker runs). A process that dies before
 * the delete leaves the message to come back after the queue's visibility
 * timeout; its second delivery signals the same keys again, which imports
 * nothing twice: a file version's identity (data source, key, ETag) is
 * committed once (see the README's "Exactly once").
 */
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Connection, SqsQueue } from '../schemas/connection.js';
import type { DataSourceSpec } from '../schemas/datasource.js';
import { routeObjectRefs } from '../schemas/event-routing.js';
import { classifyQueueMessage } from '../schemas/s3-event.js';
import { MAX_NOTIFIED_KEYS, WORKFLOW_TYPE, syncSignal, workflowIdFor } from '../workflows/messages.js';
import { sqsClient } from '../s3/sqs.js';
import type { EventStats, QueueStats } from './stats.js';

/** How often the queue's attributes (backlog, in flight, dead-letter queue) are read: a few requests an hour. */
const ATTRIBUTES_EVERY_MS = 5 * 60_000;
/** A data source list this fresh is reused for the next batch (visibility, one request per refresh). */
const DIRECTORY_FRESH_MS = 1000;
/** Waits after a failed receive: 1 s doubling to 30 s. */
const BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000];

export interface SqsConsumerHooks {
  /** Called with the message ids about to be deleted (the failure tests kill the process here). */
  beforeDelete?(messageIds: string[]): void | Promise<void>;
}

export interface SqsConsumerOptions {
  temporal: Client;
  /** Data sources are the running workflows on this task queue. */
  taskQueue: string;
  connections: Map<string, Connection>;
  stats: EventStats;
  hooks?: SqsConsumerHooks;
  log?: (line: string) => void;
  /** Make the SQS client (tests count requests through it). @default sqsClient */
  client?: (conn: Connection & { sqs: SqsQueue }) => SQSClient;
}

export interface SqsConsumers {
  /** Abort the long polls and wait for the batches in hand to finish. */
  stop(): Promise<void>;
}

/** Running data sources' names, connections and bucket URIs, from Temporal visibility. */
class DataSourceDirectory {
  private cached: { at: number; items: Array<{ name: string; connection: string; bucketUri: string }> } | null = null;
  private loading: Promise<Array<{ name: string; connection: string; bucketUri: string }>> | null = null;
  constructor(private readonly temporal: Client, private readonly taskQueue: string) {}

  async forConnection(connection: string) {
    return (await this.all()).filter((d) => d.connection === connection);
  }

  private all() {
    if (this.cached && Date.now() - this.cached.at < DIRECTORY_FRESH_MS) return Promise.resolve(this.cached.items);
    this.loading ??= (async () => {
      const queue = this.taskQueue.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
      const items: Array<{ name: string; connection: string; bucketUri: string }> = [];
      for await (const wf of this.temporal.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
        const spec = wf.memo?.spec as DataSourceSpec | undefined;
        if (spec) items.push({ name: spec.name, connection: spec.connection, bucketUri: spec.bucketUri });
      }
      this.cached = { at: Date.now(), items };
      return items;
    })().finally(() => (this.loading = null));
    return this.loading;
  }
}

/** Start one consumer per connection that names an SQS queue. */
export function startSqsConsumers(opts: SqsConsumerOptions): SqsConsumers {
  const abort = new AbortController();
  const directory = new DataSourceDirectory(opts.temporal, opts.taskQueue);
  const loops: Promise<void>[] = [];
  const clients: SQSClient[] = [];
  for (const [name, conn] of opts.connections) {
    if (!conn.sqs) continue;
    const c = conn as Connection & { sqs: SqsQueue };
    const client = (opts.client ?? sqsClient)(c);
    clients.push(client);
    const stats = opts.stats.queue(name, c.sqs.queueUrl);
    client.middlewareStack.add(
      (next) => (args) => {
        stats.requests++;
        return next(args);
      },
      { step: 'initialize', name: 's3chCountRequests' },
    );
    loops.push(new QueueConsumer(name, c.sqs, client, stats, directory, opts, abort.signal).run());
  }
  return {
    async stop() {
      abort.abort();
      await Promise.all(loops);
      for (const c of clients) c.destroy();
    },
  };
}

class QueueConsumer {
  private attributesAt = 0;
  constructor(
    private readonly connection: string,
    private readonly queue: SqsQueue,
    private readonly client: SQSClient,
    private readonly stats: QueueStats,
    private readonly directory: DataSourceDirectory,
    private readonly opts: SqsConsumerOptions,
    private readonly signal: AbortSignal,
  ) {}

  async run(): Promise<void> {
    let failures = 0;
    while (!this.signal.aborted) {
      try {
        if (Date.now() - this.attributesAt >= ATTRIBUTES_EVERY_MS) await this.readAttributes();
        this.stats.polling = true;
        this.stats.receives++;
        const res = await this.client.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queue.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: this.queue.waitTimeSeconds,
            MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp', 'ApproximateFirstReceiveTimestamp'],
          }),
          { abortSignal: this.signal },
        );
        this.stats.lastPollAt = new Date().toISOString();
        failures = 0;
        const messages = res.Messages ?? [];
        if (messages.length === 0) {
          this.stats.lagSeconds = 0;
          continue;
        }
        await this.handle(messages);
      } catch (err) {
        if (this.signal.aborted) break;
        this.stats.polling = false;
        this.stats.errors++;
        this.stats.lastError = describe(err);
        this.opts.log?.(`[sqs] ${this.connection}: ${this.stats.lastError}; trying again`);
        await sleep(BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)]!, this.signal);
      }
    }
    this.stats.polling = false;
  }

  /** Backlog, in-flight count and redrive policy: shown with the counters, and a check that the queue is reachable. */
  private async readAttributes() {
    this.attributesAt = Date.now();
    const res = await this.client.send(
      new GetQueueAttributesCommand({ QueueUrl: this.queue.queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'VisibilityTimeout', 'RedrivePolicy'] }),
      { abortSignal: this.signal },
    );
    const a = res.Attributes ?? {};
    const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
    this.stats.approximateMessages = num(a.ApproximateNumberOfMessages);
    this.stats.approximateMessagesInFlight = num(a.ApproximateNumberOfMessagesNotVisible);
    this.stats.visibilityTimeoutSeconds = num(a.VisibilityTimeout);
    let dlq: string | null = null;
    try {
      dlq = a.RedrivePolicy ? String((JSON.parse(a.RedrivePolicy) as { deadLetterTargetArn?: unknown }).deadLetterTargetArn ?? '') || null : null;
    } catch {
      dlq = null;
    }
    this.stats.deadLetterQueue = dlq;
    this.stats.attributesAt = new Date().toISOString();
  }

  private async handle(messages: Message[]) {
    const now = Date.now();
    const s = this.stats;
    s.received += messages.length;
    s.lastMessageAt = new Date(now).toISOString();
    const sent = messages.map((m) => Number(m.Attributes?.SentTimestamp)).filter((t) => Number.isFinite(t) && t > 0);
    s.lagSeconds = sent.length ? Math.max(0, (now - Math.min(...sent)) / 1000) : 0;
    s.redelivered += messages.filter((m) => Number(m.Attributes?.ApproximateReceiveCount ?? 1) > 1).length;

    // Each message's keys per data source; the batch's keys go to each data source in one signal.
    const dataSources = await this.directory.forConnection(this.connection);
    const deletable: Message[] = [];
    const routes = new Map<Message, Map<string, string[]>>();
    for (const m of messages) {
      const parsed = classifyQueueMessage(m.Body);
      if (parsed.kind === 'unparseable') {
        s.unparseable++;
        s.lastUnparseable = `${parsed.reason} (message ${m.MessageId ?? '?'})`;
        continue;
      }
      if (parsed.kind === 'test') {
        s.testEvents++;
        deletable.push(m);
        continue;
      }
      const route = routeObjectRefs(dataSources, parsed.refs);
      if (route.size === 0) {
        s.unmatched++;
        deletable.push(m);
        continue;
      }
      s.matched++;
      routes.set(m, route);
    }
    const keysFor = new Map<string, Set<string>>();
    for (const route of routes.values()) {
      for (const [name, keys] of route) {
        const set = keysFor.get(name) ?? new Set<string>();
        for (const k of keys) set.add(k);
        keysFor.set(name, set);
      }
    }
    const failed = new Set<string>();
    await Promise.all(
      [...keysFor].map(async ([name, keys]) => {
        try {
          await this.signalKeys(name, [...keys]);
        } catch (err) {
          failed.add(name);
          s.signalErrors++;
          s.lastError = `signal to data source ${name} failed: ${describe(err)}`;
          this.opts.log?.(`[sqs] ${this.connection}: ${s.lastError}; its messages stay on the queue for redelivery`);
        }
      }),
    );
    for (const [m, route] of routes) if (![...route.keys()].some((n) => failed.has(n))) deletable.push(m);
    await this.delete(deletable);
  }

  /** Hand the keys to the data source's workflow; resolves once Temporal has them in its history. */
  private async signalKeys(name: string, keys: string[]) {
    const handle = this.opts.temporal.workflow.getHandle(workflowIdFor(name));
    try {
      for (let i = 0; i < keys.length; i += MAX_NOTIFIED_KEYS) {
        await handle.signal(syncSignal, { reason: 'sqs', keys: keys.slice(i, i + MAX_NOTIFIED_KEYS) });
      }
    } catch (err) {
      // Deleted since the directory was read: nobody is left to import it.
      if (err instanceof WorkflowNotFoundError) return;
      throw err;
    }
    this.opts.stats.recordEvent(name, keys.length, 'sqs');
  }

  private async delete(messages: Message[]) {
    if (messages.length === 0) return;
    await this.opts.hooks?.beforeDelete?.(messages.map((m) => m.MessageId ?? ''));
    // Not aborted by stop(): a batch whose signals went out is acknowledged before the process exits.
    const res = await this.client.send(
      new DeleteMessageBatchCommand({ QueueUrl: this.queue.queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }),
    );
    this.stats.deleted += res.Successful?.length ?? 0;
    if (res.Failed?.length) {
      // The message comes back after its visibility timeout, and is signalled (harmlessly) again.
      this.stats.errors += res.Failed.length;
      this.stats.lastError = `delete failed: ${res.Failed.map((f) => `${f.Code}: ${f.Message ?? ''}`).join('; ').slice(0, 500)}`;
    }
  }
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e?.name ?? 'Error'}: ${(e?.message ?? String(err)).slice(0, 300)}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}
