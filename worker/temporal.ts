import { NativeConnection } from '@temporalio/worker';
import type { Env } from '../schemas/config.js';
import { temporalConnectionOptions } from '../temporal/client.js';

/** The worker's native connection, with the same options as the client's. */
export async function connectWorker(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY'>, address: string): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(env, address));
}
