import type { Client } from '@temporalio/client';
import type { Destination } from '../activities/destination.js';
import type { S3Connections } from '../activities/s3.js';
import type { DataSourceService } from './service.js';

export interface ApiDeps {
  temporal: Client;
  taskQueue: string;
  searchAttributes: boolean;
  destination: Destination;
  s3: S3Connections;
  /** Bearer tokens: admin may change things, readOnly may only read. Both empty = no auth (loopback only). */
  tokens: { admin: string[]; readOnly: string[]; required?: boolean };
}

export interface AppEnv {
  Variables: { deps: ApiDeps; service: DataSourceService };
}
