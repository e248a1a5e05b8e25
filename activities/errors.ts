import { ApplicationFailure } from '@temporalio/common';
import { OBJECT_CHANGED_MARK } from '../clickhouse/import-statement.js';

/**
 * The one place that decides whether a failure is worth retrying. Retrying
 * cannot fix a file that is not what it claims to be, an object that is gone
 * or changed, or a missing permission; it can fix a network blip, a throttled
 * S3 or a ClickHouse that is restarting.
 */
export type FailureKind =
  | 'object_missing'
  | 'object_changed'
  | 'access_denied'
  | 'bad_file'
  | 'too_large'
  | 'config'
  | 'transient';

const NON_RETRYABLE: ReadonlySet<FailureKind> = new Set(['object_missing', 'object_changed', 'bad_file', 'too_large', 'config']);

export class ImportError extends Error {
  constructor(readonly kind: FailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// ClickHouse error types that mean "this file's bytes are not valid for its format".
const DATA_ERROR = /PARSE|INCORRECT_DATA|TYPE_MISMATCH|DECIMAL_OVERFLOW|ILLEGAL_TYPE_OF_ARGUMENT|CANNOT_READ_ALL_DATA|UNKNOWN_FORMAT|CANNOT_DECOMPRESS|ZLIB|ZSTD|LZMA|SNAPPY|INCORRECT_NUMBER_OF_COLUMNS|CANNOT_EXTRACT_TABLE_STRUCTURE|TOO_LARGE_STRING_SIZE|BAD_ARGUMENTS|CANNOT_READ_FROM_FILE|ONLY_NULLS_WHILE_READING_SCHEMA|CANNOT_SKIP_UNKNOWN_FIELD|TOO_MANY_ROWS_OR_BYTES|ARCHIVE/;

interface AwsLikeError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  message?: string;
}

/** ClickHouse reading S3 itself reports S3's answer in its message. */
const CH_S3_STATUS = /HTTP response code: (\d{3})/;

export function classify(err: unknown): ImportError {
  if (err instanceof ImportError) return err;
  const e = err as AwsLikeError & { type?: string; code?: string };
  const message = e?.message ?? String(err);
  const firstLine = message.split('\n')[0]!;
  if (message.includes(OBJECT_CHANGED_MARK) || /was replaced during read \(etag changed/.test(message)) {
    return new ImportError('object_changed', 'object changed after it was listed (ETag differs); the new version is imported on the next sync', { cause: err });
  }
  if (e?.type === 'MEMORY_LIMIT_EXCEEDED' && !/total memory limit/i.test(message)) {
    return new ImportError('too_large', `the file needs more memory than one import may use (a line or value far larger than limits.maxRowBytes, or a decompression bomb): ${firstLine}`, { cause: err });
  }
  const fromClickHouse = typeof e?.type === 'string';
  // ClickHouse words S3's SlowDown as its message only: name it, so throttling is recognisable in the ledger.
  const slowDown = fromClickHouse && /reduce your request rate/i.test(message);
  const chStatus = fromClickHouse ? (slowDown ? 503 : Number(CH_S3_STATUS.exec(message)?.[1] ?? 0)) : 0;
  const status = e?.$metadata?.httpStatusCode ?? (chStatus || undefined);
  const name = slowDown ? 'SlowDown' : fromClickHouse ? '' : e?.name ?? e?.Code ?? '';
  if (name === 'NoSuchBucket' || (chStatus === 404 && /NoSuchBucket|bucket does not exist/i.test(message))) return new ImportError('config', `bucket does not exist: ${firstLine}`, { cause: err });
  if (name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket')) {
    return new ImportError('object_missing', `object no longer exists (deleted after it was listed): ${message}`, { cause: err });
  }
  if (name === 'PreconditionFailed' || status === 412) {
    return new ImportError('object_changed', 'object changed after it was listed (ETag differs); the new version is imported on the next sync', { cause: err });
  }
  if (name === 'NoSuchBucket') return new ImportError('config', `bucket does not exist: ${message}`, { cause: err });
  if (name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || status === 403) {
    return new ImportError('access_denied', `S3 denied access (${name || status}): check the connection's credentials and that they allow s3:ListBucket and s3:GetObject`, { cause: err });
  }
  if (typeof e?.type === 'string' && DATA_ERROR.test(e.type)) {
    return new ImportError('bad_file', `ClickHouse could not read the file: ${message.split('\n')[0]}`, { cause: err });
  }
  if (/refused before parsing to keep memory bounded/.test(message)) {
    return new ImportError('too_large', message, { cause: err });
  }
  if (/incorrect header check|unexpected end of file|invalid (stored block|distance|code)/i.test(message)) {
    return new ImportError('bad_file', `the file is not valid compressed data: ${message}`, { cause: err });
  }
  if (/too many bytes in the stream|not enough bytes in the stream|invalid local file header|invalid central directory/i.test(message)) {
    return new ImportError('bad_file', `a zip entry is damaged or larger than its header says (a likely zip bomb): ${message}`, { cause: err });
  }
  // Keep the S3 code and HTTP status (SlowDown, 503...) so throttling is recognisable in the ledger.
  const label = [name && name !== 'Error' ? name : null, status ? `HTTP ${status}` : null].filter(Boolean).join(', ');
  return new ImportError('transient', label ? `${label}: ${message}` : message, { cause: err });
}

export function toApplicationFailure(err: ImportError): ApplicationFailure {
  return ApplicationFailure.create({
    type: err.kind,
    message: err.message,
    nonRetryable: NON_RETRYABLE.has(err.kind),
  });
}

export function isNonRetryable(kind: FailureKind): boolean {
  return NON_RETRYABLE.has(kind);
}
