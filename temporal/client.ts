import * as grpc from '@grpc/grpc-js';
import { Connection, Client, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ConnectionLike, type ConnectionOptions, type GrpcRetryOptions } from '@temporalio/client';
import type { Env } from '../schemas/config.js';

/**
 * Temporal client access, used by the API and the worker alike (the worker
 * adds its native connection in worker/temporal.ts), so an API-only process
 * never loads the worker SDK.
 */

/** Connection options for a Temporal cluster or Temporal Cloud (TLS, API key) from validated config. */
export function temporalConnectionOptions(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY'>, address: string) {
  return {
    address,
    tls: env.TEMPORAL_TLS || Boolean(env.TEMPORAL_API_KEY) ? {} : undefined,
    apiKey: env.TEMPORAL_API_KEY,
  };
}

/**
 * Knows which calls of one connection are still under way, retries included,
 * so the connection closes only after they settle.
 *
 * Why: the SDK retries a failed call (UNAVAILABLE, RESOURCE_EXHAUSTED...) from
 * a timer. A retry whose timer fires after `connection.close()` asks the closed
 * channel for a new call, which throws inside the timer, where no caller can
 * catch it: an uncaught "Channel has been shut down" that crashes a process
 * that was stopping cleanly (closing the channel itself turns every queued
 * call into such a retry). So: when closing starts, no call is retried again;
 * close waits (bounded) for the calls under way to get their last answer; and
 * a retry that still fires after the channel closed gets a CANCELLED answer
 * instead of touching the channel.
 */
class CallTracker {
  #inFlight = 0;
  #closing = false;
  #closed = false;
  #waiters: (() => void)[] = [];

  /** Outermost: one count per call, from its start to its final status (after every retry). */
  readonly #track: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) => {
        this.#inFlight++;
        let settled = false;
        next(metadata, new grpc.ListenerBuilder().withOnReceiveStatus((status, nextStatus) => {
          if (!settled) {
            settled = true;
            this.#settle();
          }
          nextStatus(status);
        }).build());
      },
    });

  /** Innermost: after close, an attempt answers CANCELLED without asking the closed channel. */
  readonly #refuseWhenClosed: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(this.#closed ? closedCall() : nextCall(options));

  readonly interceptors: grpc.Interceptor[];

  constructor(retry: GrpcRetryOptions) {
    this.interceptors = [
      this.#track,
      makeGrpcRetryInterceptor({ ...retry, retryableDecider: (attempt, status) => !this.#closing && retry.retryableDecider(attempt, status) }),
      this.#refuseWhenClosed,
    ];
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  #settle(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Stop retrying, wait up to `graceMs` for the calls under way, then refuse every later attempt. */
  async drain(graceMs: number): Promise<void> {
    this.#closing = true;
    if (this.#inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    this.#closed = true;
  }
}

/** A call that never reaches the channel: it answers CANCELLED on start. */
type CallInterface = NonNullable<ConstructorParameters<typeof grpc.InterceptingCall>[0]>;

function closedCall(): CallInterface {
  const noop = () => undefined;
  return {
    start(_metadata: grpc.Metadata, listener?: Partial<grpc.InterceptingListener>) {
      setImmediate(() => listener?.onReceiveStatus?.({ code: grpc.status.CANCELLED, details: 'the Temporal connection was closed', metadata: new grpc.Metadata() }));
    },
    sendMessageWithContext: noop,
    sendMessage: noop,
    startRead: noop,
    halfClose: noop,
    cancelWithStatus: noop,
    getPeer: () => '',
    getAuthContext: () => null,
  };
}

const trackers = new WeakMap<ConnectionLike, CallTracker>();

/**
 * A connection made lazily (no round trip yet) whose `closeConnection` waits
 * for its calls; `retry` is the SDK's own policy unless given.
 */
export function trackedConnection(options: ConnectionOptions, retry: GrpcRetryOptions = defaultGrpcRetryOptions()): Connection {
  const tracker = new CallTracker(retry);
  const connection = Connection.lazy({ ...options, interceptors: tracker.interceptors });
  trackers.set(connection, tracker);
  return connection;
}

/** Calls of this connection still waiting for their final answer (retries included). */
export function callsInFlight(connection: ConnectionLike): number {
  return trackers.get(connection)?.inFlight ?? 0;
}

/**
 * Close a connection once its calls have settled (at most `graceMs`; a call
 * still waiting then, such as a long poll, ends CANCELLED rather than crashing
 * the process from a retry timer).
 */
export async function closeConnection(connection: ConnectionLike, graceMs = 5_000): Promise<void> {
  await trackers.get(connection)?.drain(graceMs);
  await connection.close();
}

/** `trackedConnection`, connected (the server answered) before it is handed out. */
export async function openConnection(options: ConnectionOptions): Promise<Connection> {
  const connection = trackedConnection(options);
  await connection.ensureConnected();
  return connection;
}

export async function connectClient(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY' | 'TEMPORAL_NAMESPACE'>, address: string): Promise<Client> {
  const connection = await openConnection(temporalConnectionOptions(env, address));
  return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE });
}

/** Whether the namespace has our custom search attributes registered (the Web UI filters on them). */
export async function hasSearchAttributes(client: Client, namespace: string): Promise<boolean> {
  try {
    const res = await client.connection.operatorService.listSearchAttributes({ namespace });
    const custom = res.customAttributes ?? {};
    return 'DataSource' in custom && 'DataSourceState' in custom;
  } catch {
    return false;
  }
}
