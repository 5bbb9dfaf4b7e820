/**
 * RFC 9457 problem responses, and the one place where engine errors become HTTP statuses.
 * No stack traces or internal details ever reach a response.
 */
import { z } from "zod";
import {
  DatabaseUnavailableError,
  EngineError,
  EngineStartingError,
  type FieldProblem,
  IngestOverloadedError,
  LogUnavailableError,
  NotFoundError,
  PayloadTooLargeError,
  problemType,
  RequestTimeoutError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../engine/errors.ts";
import type { ResponseDoc } from "./openapi.ts";

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_S = 5;

/**
 * Seconds a client should wait after ingestion refused a request at its limit: the appends it waits
 * for are answered within milliseconds while the log keeps up, PUBLISH_TIMEOUT_MS at the latest.
 */
export const INGEST_RETRY_AFTER_S = 1;

/** Media type of every error response (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** One offending field, as listed in a problem's `errors`; mirrors FieldProblem. */
export const fieldProblemSchema = z.object({
  path: z.string().describe(
    "Dotted path of the field; batches start with the event's index, e.g. `2.properties.price`",
  ),
  message: z.string().describe("What is wrong with it"),
}).meta({ id: "FieldProblem" }) satisfies z.ZodType<FieldProblem>;

/** How one error class is answered; `detail` replaces the message where it may name internals. */
interface ErrorMapping {
  readonly type: new (...args: never[]) => EngineError;
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  /** Retry-After of a retryable status, if not RETRY_AFTER_S. */
  readonly retryAfterS?: number;
}

const STATUS_BY_ERROR: readonly ErrorMapping[] = [
  { type: ValidationError, status: 400, title: "Invalid request" },
  { type: NotFoundError, status: 404, title: "Not found" },
  { type: RequestTimeoutError, status: 408, title: "Request timeout" },
  { type: PayloadTooLargeError, status: 413, title: "Payload too large" },
  { type: UnsupportedMediaTypeError, status: 415, title: "Unsupported media type" },
  {
    type: IngestOverloadedError,
    status: 429,
    title: "Too many events waiting for the log",
    retryAfterS: INGEST_RETRY_AFTER_S,
  },
  {
    type: LogUnavailableError,
    status: 503,
    title: "Event log unavailable",
    detail: "The event log did not acknowledge the events in time; none is reported accepted. Retry later.",
  },
  {
    type: DatabaseUnavailableError,
    status: 503,
    title: "Database unavailable",
    detail: "The database is unavailable. Retry later.",
  },
  {
    type: EngineStartingError,
    status: 503,
    title: "Engine starting",
    detail: "The engine is still starting (opening its log and database, joining its consumer group). Retry later.",
  },
];

/**
 * The problem types the API answers, each with its status, for the document: a client tells a starting engine from a
 * database outage (both 503), or an unknown id from an unknown path (both 404), by the type alone.
 */
function problemTypesDoc(): string {
  const engine = STATUS_BY_ERROR.map((m) =>
    `\`${problemType((Reflect.construct(m.type, [""]) as EngineError).code)}\` (${m.status})`
  );
  return `URI naming the kind of problem: ${engine.join(", ")}; \`about:blank\` for a path no route serves (404), ` +
    "a method the path does not take (405, with `Allow`) or an unexpected error (500)";
}

/** Body of an application/problem+json response; the schema documents it in the OpenAPI document. */
export const problemSchema = z.looseObject({
  type: z.string().default("about:blank").describe(problemTypesDoc()),
  title: z.string().describe("Short summary of the kind of problem"),
  status: z.number().int().min(400).max(599).describe("The HTTP status code"),
  detail: z.string().optional().describe("What went wrong with this request"),
  errors: z.array(fieldProblemSchema).optional().describe("Every offending field (validation problems only)"),
}).meta({ id: "Problem", description: "An RFC 9457 problem; no stack traces or internal details" });

/** Body of an application/problem+json response. */
export type Problem = z.input<typeof problemSchema>;

/** Statuses after which the client should retry later; they carry Retry-After. */
const RETRYABLE_STATUSES = new Set([429, 503]);

/** OpenAPI description of a problem response with `status`; retryable ones document Retry-After. */
export function problemDoc(status: number, description: string): ResponseDoc {
  return {
    description,
    content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } },
    ...(RETRYABLE_STATUSES.has(status)
      ? {
        headers: { "Retry-After": { description: "Seconds to wait before retrying", schema: z.number().int().min(0) } },
      }
      : {}),
  };
}

/** Builds a problem response. */
export function problemResponse(problem: Problem, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify({ type: "about:blank", ...problem }), {
    status: problem.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...headers },
  });
}

/** Maps any error to a problem response; unknown errors become a bare 500. */
export function errorResponse(error: unknown): Response {
  const mapping = STATUS_BY_ERROR.find((m) => error instanceof m.type);
  if (!mapping) return problemResponse({ title: "Internal server error", status: 500 });
  const engineError = error as EngineError;
  const body: Problem = {
    type: problemType(engineError.code),
    title: mapping.title,
    status: mapping.status,
    detail: mapping.detail ?? engineError.message,
    ...(error instanceof ValidationError && error.problems.length > 0 ? { errors: [...error.problems] } : {}),
  };
  return problemResponse(body, {
    ...(RETRYABLE_STATUSES.has(mapping.status) ? { "retry-after": String(mapping.retryAfterS ?? RETRY_AFTER_S) } : {}),
    ...(error instanceof UnsupportedMediaTypeError && error.acceptEncoding !== undefined
      ? { "accept-encoding": error.acceptEncoding }
      : {}),
  });
}
