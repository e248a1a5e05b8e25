import { describe, expect, it } from 'vitest';
import { ConfigError, envSchema, loadConnections, loadEnv } from '../../schemas/config.js';

describe('configuration', () => {
  it('the shipped connection files are valid, every kind included', () => {
    const example = loadConnections(envSchema.parse({ S3CH_CONNECTIONS_FILE: 'deploy/connections.example.json' }));
    expect([...new Set([...example.values()].map((c) => c.kind))].sort()).toEqual(['anonymous', 'assume-role', 'default-chain', 'static']);
    expect([...loadConnections(envSchema.parse({ S3CH_CONNECTIONS_FILE: 'deploy/connections.json' })).keys()]).toEqual(['local']);
  });

  it('a bad variable is named with the reason', () => {
    try {
      loadEnv({ CLICKHOUSE_URL: 'not a url', PORT: '99999' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect(Object.keys((err as ConfigError).fields).sort()).toEqual(['CLICKHOUSE_URL', 'PORT']);
    }
  });

  it('invalid connection JSON never echoes the secret it contains', () => {
    const secret = 'sEcReT-value-123';
    const env = envSchema.parse({ S3CH_CONNECTIONS: JSON.stringify({ connections: { x: { kind: 'static', accessKeyId: 'a', secretAccessKey: secret, region: 'r', extra: 1 } } }) });
    expect(() => loadConnections(env)).toThrow(/connections\.x: Unrecognized key: "extra"/);
    try {
      loadConnections(env);
    } catch (err) {
      expect((err as Error).message).not.toContain(secret);
    }
    expect(() => loadConnections(envSchema.parse({ S3CH_CONNECTIONS: '{not json' }))).toThrow(/S3CH_CONNECTIONS: not valid JSON/);
  });
});
