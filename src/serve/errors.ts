// Errors in OpenAI's JSON shape: {"error": {"message", "type", "param", "code"}} with the HTTP
// status OpenAI uses for the same case.
import { randomBytes } from 'node:crypto';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 naming the request field at fault. */
export function badParam(param: string, message: string, code: string | null = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

/**
 * What the client sees of an error that is not an ApiError (a bug, a model file that cannot be
 * read): "internal error" and an id, never the error's text (it may quote a file's contents or
 * name server paths). `log` gets the id and the whole error for the server's log.
 */
export function internalError(e: unknown, log: (line: string) => void = (l) => console.error(l)): ApiError {
  const id = `err_${randomBytes(6).toString('hex')}`;
  log(`${id}: ${e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e)}`);
  const err = new ApiError(500, `internal error (id ${id}; the server's log has the details)`, 'server_error', null, 'internal_error');
  return err;
}

/** Node's JSON.parse message without the text it quotes (only the position, when it gives one). */
export function jsonErrorPosition(e: unknown): string {
  const msg = e instanceof Error ? e.message : '';
  const pos = /position (\d+)/.exec(msg);
  if (pos) return `at position ${pos[1]}`;
  if (/end of (JSON|data) input/i.test(msg)) return 'at the end (the JSON is cut short)';
  return '';
}
