/**
 * RFC 9457 problem responses, and the one place where engine errors become HTTP statuses.
 * No stack traces or internal details ever reach a response.
 */
import {
  DatabaseUnavailableError,
  EngineError,
  type FieldProblem,
  LogUnavailableError,
  NotFoundError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../engine/errors.ts";

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_S = 5;

/** Body of an application/problem+json response. */
export interface Problem {
  readonly type?: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly errors?: readonly FieldProblem[];
  readonly [extension: string]: unknown;
}

/** Builds a problem response. */
export function problemResponse(problem: Problem, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify({ type: "about:blank", ...problem }), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

const STATUS_BY_ERROR: [new (...args: never[]) => EngineError, number, string][] = [
  [ValidationError, 400, "Invalid request"],
  [NotFoundError, 404, "Not found"],
  [PayloadTooLargeError, 413, "Payload too large"],
  [UnsupportedMediaTypeError, 415, "Unsupported media type"],
  [LogUnavailableError, 503, "Event log unavailable"],
  [DatabaseUnavailableError, 503, "Database unavailable"],
];

/** Maps any error to a problem response; unknown errors become a bare 500. */
export function errorResponse(error: unknown): Response {
  for (const [type, status, title] of STATUS_BY_ERROR) {
    if (!(error instanceof type)) continue;
    const engineError = error as EngineError;
    const body: Problem = {
      type: `urn:actor-engine:problem:${engineError.code}`,
      title,
      status,
      detail: engineError.message,
      ...(error instanceof ValidationError && error.problems.length > 0 ? { errors: error.problems } : {}),
    };
    return problemResponse(body, status === 503 ? { "retry-after": String(RETRY_AFTER_S) } : {});
  }
  return problemResponse({ title: "Internal server error", status: 500 });
}
