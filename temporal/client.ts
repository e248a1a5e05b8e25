import { Connection, Client } from '@temporalio/client';
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

export async function connectClient(env: Pick<Env, 'TEMPORAL_TLS' | 'TEMPORAL_API_KEY' | 'TEMPORAL_NAMESPACE'>, address: string): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(env, address));
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
