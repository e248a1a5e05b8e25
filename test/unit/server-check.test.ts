import { describe, expect, it } from 'vitest';
import type { ClickHouseClient } from '@clickhouse/client';
import { checkServer, createDestination, IncompatibleServerError, MIN_CLICKHOUSE_VERSION, REQUIRED_SETTINGS } from '../../clickhouse/destination.js';
import { processDestination } from '../support/harness.js';

/** A client that answers the start-up check's one query with `row`. */
function answering(row: { version: string; missing: string[] }): ClickHouseClient {
  return { query: async () => ({ json: async () => [row] }) } as unknown as ClickHouseClient;
}

describe('the start-up check of the ClickHouse server', () => {
  it('accepts the run\'s engine, which has every setting the guarantees rely on', async () => {
    const { version } = await checkServer((await processDestination()).client);
    expect(version).toMatch(/^26\.7\./);
  });

  it('refuses an older server, naming the minimum version', async () => {
    const err = await checkServer(answering({ version: '25.8.3.1', missing: [] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IncompatibleServerError);
    expect((err as Error).message).toContain(`needs ClickHouse ${MIN_CLICKHOUSE_VERSION} or newer`);
    expect((err as Error).message).toContain('25.8.3.1');
  });

  it('refuses a server without a setting the import path pins, naming it', async () => {
    const err = await checkServer(answering({ version: '27.1.1.1', missing: ['deduplicate_insert_select'] })).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/lacks the settings deduplicate_insert_select/);
    expect(REQUIRED_SETTINGS).toContain('deduplicate_insert_select');
  });

  it('accepts newer versions', async () => {
    await expect(checkServer(answering({ version: '26.10.1.5', missing: [] }))).resolves.toEqual({ version: '26.10.1.5' });
    await expect(checkServer(answering({ version: '27.0.0.1', missing: [] }))).resolves.toEqual({ version: '27.0.0.1' });
  });

  it('without CLICKHOUSE_URL there is no destination: the error names the variable', () => {
    expect(() => createDestination({ CLICKHOUSE_URL: undefined, CLICKHOUSE_USER: 'u', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: 'd' })).toThrow(/CLICKHOUSE_URL: required/);
  });
});
