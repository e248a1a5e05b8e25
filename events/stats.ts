/**
 * What this process saw of event notifications, since it started: per SQS
 * queue (received, matched, deleted, redelivered, unparseable, lag) and per
 * data source (last event, events). Counters live in memory: they show the
 * health of the notification path now; the ledger, not these, records what
 * was imported.
 */

export type EventChannel = 'webhook' | 'sqs';

export interface QueueStats {
  connection: string;
  queueUrl: string;
  /** A long poll is running (false once stopped, or while a receive fails and waits to try again). */
  polling: boolean;
  /** Messages received, redeliveries included. */
  received: number;
  /** Messages with at least one object some data source imports. */
  matched: number;
  /** Understood messages that concern no data source (keys no glob takes, other buckets, deletions). */
  unmatched: number;
  /** S3's `s3:TestEvent` messages (sent when a bucket notification is configured). */
  testEvents: number;
  /** Messages deleted: every data source they concern had the keys durably (or there was none). */
  deleted: number;
  /** Receipts of a message received before (ApproximateReceiveCount > 1): a consumer died, or a signal failed, before its delete. */
  redelivered: number;
  /** Receipts of messages that are no S3 event; never deleted, so the queue's redrive policy moves them to its dead-letter queue. */
  unparseable: number;
  /** Why the last unparseable message was refused. */
  lastUnparseable: string | null;
  /** Signals that failed (Temporal unreachable): their messages were left for redelivery. */
  signalErrors: number;
  /** Failed receives and deletes. */
  errors: number;
  lastError: string | null;
  /** SQS API requests this process made for the queue (receives, deletes, attribute reads). */
  requests: number;
  /** ReceiveMessage requests (long polls) among them. */
  receives: number;
  /** Age in seconds of the oldest message of the last batch when it arrived (SentTimestamp); 0 once a poll finds the queue empty. */
  lagSeconds: number;
  lastMessageAt: string | null;
  lastPollAt: string | null;
  /** From GetQueueAttributes, read at start and every few minutes. */
  approximateMessages: number | null;
  approximateMessagesInFlight: number | null;
  visibilityTimeoutSeconds: number | null;
  /** The dead-letter queue of the queue's redrive policy, or null when it has none. */
  deadLetterQueue: string | null;
  attributesAt: string | null;
}

export interface NotificationHealth {
  /** When an event last named a key this data source imports. */
  lastEventAt: string | null;
  /** Keys events named for it since `since` (webhook and SQS). */
  events: number;
  byChannel: Record<EventChannel, number>;
  /** When this process started counting. */
  since: string;
}

export class EventStats {
  readonly since = new Date().toISOString();
  /** This process among those that report their counters (see stats-store.ts). */
  readonly process = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  private readonly queueStats = new Map<string, QueueStats>();
  private readonly perDataSource = new Map<string, NotificationHealth>();

  /** The counters of a connection's queue (created on first use). */
  queue(connection: string, queueUrl: string): QueueStats {
    let q = this.queueStats.get(connection);
    if (!q) {
      q = {
        connection, queueUrl, polling: false, received: 0, matched: 0, unmatched: 0, testEvents: 0, deleted: 0, redelivered: 0,
        unparseable: 0, lastUnparseable: null, signalErrors: 0, errors: 0, lastError: null, requests: 0, receives: 0, lagSeconds: 0,
        lastMessageAt: null, lastPollAt: null, approximateMessages: null, approximateMessagesInFlight: null,
        visibilityTimeoutSeconds: null, deadLetterQueue: null, attributesAt: null,
      };
      this.queueStats.set(connection, q);
    }
    return q;
  }

  queues(): QueueStats[] {
    return [...this.queueStats.values()].map((q) => ({ ...q })).sort((a, b) => a.connection.localeCompare(b.connection));
  }

  /** `keys` keys of an event were handed to a data source's workflow. */
  recordEvent(dataSource: string, keys: number, channel: EventChannel, at = new Date()): void {
    let h = this.perDataSource.get(dataSource);
    if (!h) {
      h = { lastEventAt: null, events: 0, byChannel: { webhook: 0, sqs: 0 }, since: this.since };
      this.perDataSource.set(dataSource, h);
    }
    h.lastEventAt = at.toISOString();
    h.events += keys;
    h.byChannel[channel] += keys;
  }

  /** A data source's notification health; one no event reached yet reads 0 events, never. */
  notifications(dataSource: string): NotificationHealth {
    const h = this.perDataSource.get(dataSource);
    return h ? { ...h, byChannel: { ...h.byChannel } } : { lastEventAt: null, events: 0, byChannel: { webhook: 0, sqs: 0 }, since: this.since };
  }

  /** Changes when a counter worth reporting changes (not the idle poll's own request counts and times). */
  signature(): string {
    const queues = this.queues().map(({ requests, receives, lastPollAt, attributesAt, ...rest }) => rest);
    return JSON.stringify([queues, this.allNotifications()]);
  }

  allNotifications(): Array<NotificationHealth & { dataSource: string }> {
    return [...this.perDataSource.entries()].map(([dataSource, h]) => ({ dataSource, ...h, byChannel: { ...h.byChannel } }));
  }
}
