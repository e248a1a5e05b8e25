import { Connection, Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Env } from '../schemas/config.js';

/** Connection options for a Temporal cluster or Temporal Cloud (TLS, API key) from validated config. */
export function temporalConnectionOptions(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY'>, address: string) {
  return {
    address,
    tls: env.TEMPORAL_TLS || Boolean(env.TEMPORAL_API_KEY) ? {} : undefined,
    apiKey: env.TEMPORAL_API_KEY,
  };
}

export async function connectClient(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY' | 'TEMPORAL_NAMESPACE'>, address: string): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(env, address));
  return new Client({ connection, namespace: env.TEMPORAL_NAMESPACE });
}

export async function connectWorker(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY'>, address: string): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(env, address));
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
