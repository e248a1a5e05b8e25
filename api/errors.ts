/**
 * Errors the API turns into problem+json (RFC 9457). One class with readonly
 * discriminators; the single error mapper in app.ts renders it.
 */
export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 500 | 502 | 503,
    readonly title: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

export const badRequest = (detail: string, errors: FieldError[] = []) => new ApiError(400, 'Bad Request', detail, errors);
export const notFound = (detail: string) => new ApiError(404, 'Not Found', detail);
export const conflict = (detail: string) => new ApiError(409, 'Conflict', detail);

export function fieldErrors(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string; code?: string; keys?: ReadonlyArray<string> }>): FieldError[] {
  return issues.flatMap((i) => {
    const base = i.path.map(String).join('.');
    // An unknown key is reported on its parent object; name the key itself.
    if (i.code === 'unrecognized_keys' && i.keys?.length) {
      return i.keys.map((k) => {
        const key = k === '' ? '""' : k;
        return { field: base ? `${base}.${key}` : key, message: `unknown field '${k}'` };
      });
    }
    return [{ field: base || '(body)', message: i.message }];
  });
}
