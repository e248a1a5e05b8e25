import * as grpc from '@grpc/grpc-js';
import { defaultGrpcRetryOptions, type GrpcRetryOptions } from '@temporalio/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callsInFlight, closeConnection, trackedConnection } from '../../temporal/client.js';

/**
 * A Temporal call held in the SDK's retry (its first attempt answered
 * UNAVAILABLE, the next attempt waiting on a timer) while the connection
 * closes. Before connections were drained, the retry's timer asked the closed
 * channel for a call and threw "Channel has been shut down" where nothing
 * could catch it: the process (a vitest worker, or the API stopping) died.
 */
describe('closing a Temporal connection with a call in retry', () => {
  let server: grpc.Server;
  let address: string;
  let attempts: number;
  let retryScheduled: Promise<void>;
  /** The SDK's retry policy, with a fixed delay and a signal when it schedules a retry. */
  let retry: GrpcRetryOptions;
  let uncaught: unknown[];
  const onUncaught = (err: unknown) => uncaught.push(err);

  beforeEach(async () => {
    attempts = 0;
    uncaught = [];
    process.on('uncaughtException', onUncaught);
    let scheduled!: () => void;
    retryScheduled = new Promise((resolve) => (scheduled = resolve));
    retry = {
      ...defaultGrpcRetryOptions(),
      delayFunction: () => {
        scheduled();
        return 200;
      },
    };
    server = new grpc.Server();
    // Every attempt of GetSystemInfo answers UNAVAILABLE, which the SDK retries.
    server.register(
      '/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo',
      (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => {
        attempts++;
        callback({ code: grpc.status.UNAVAILABLE, details: 'unavailable on purpose' });
      },
      (b: Buffer) => b,
      (b: Buffer) => b,
      'unary',
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    process.off('uncaughtException', onUncaught);
  });

  it('lets the retry finish, stops retrying, and closes without an uncaught error', { timeout: 20_000 }, async () => {
    const connection = trackedConnection({ address }, retry);
    const call = connection.workflowService.getSystemInfo({});
    const outcome = call.then(() => 'resolved', (err: Error) => err.message);
    await retryScheduled;
    expect(callsInFlight(connection)).toBe(1);

    await closeConnection(connection);
    expect(await outcome).toMatch(/unavailable on purpose/);
    // The pending retry ran once against the open channel, then closing stopped further retries.
    expect(attempts).toBe(2);
    expect(callsInFlight(connection)).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(uncaught).toEqual([]);
  });

  it('answers CANCELLED to a retry whose timer fires after the channel closed', { timeout: 20_000 }, async () => {
    const connection = trackedConnection({ address }, retry);
    const call = connection.workflowService.getSystemInfo({});
    const outcome = call.then(() => 'resolved', (err: Error) => err.message);
    await retryScheduled;

    // No grace: the channel closes while the retry's timer is still pending.
    await closeConnection(connection, 0);
    expect(await outcome).toMatch(/Temporal connection was closed/);
    expect(attempts).toBe(1);
    expect(callsInFlight(connection)).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(uncaught).toEqual([]);
  });
});
