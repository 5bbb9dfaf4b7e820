/**
 * Socket errors that a client library lets escape as an unhandled rejection. postgres.js, under
 * Deno's Node compatibility, can lose its listeners on a socket whose connect is refused while the
 * database is down; the error then surfaces with no promise to reject, and an unhandled rejection
 * ends the process. The query that needed the connection fails on its own and is retried (the
 * partition rewinds, the readiness check reports the database), so these are logged, not fatal.
 */
import { ensureError } from "./errors.ts";
import type { Logger } from "./logger.ts";

/** Error codes of a connection that failed or was lost (Node's `err.code`, with `err.syscall` set). */
const NETWORK_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** Whether a rejection reason is a socket error (a code above and the system call that failed). */
export function isNetworkError(reason: unknown): boolean {
  const error = reason as { code?: unknown; syscall?: unknown } | null;
  return typeof error?.code === "string" && NETWORK_ERROR_CODES.has(error.code) && typeof error.syscall === "string";
}

/** Logs stray network errors instead of letting them end the process; returns the function that stops it. */
export function guardStrayNetworkErrors(logger: Logger): () => void {
  const onRejection = (event: PromiseRejectionEvent) => {
    if (!isNetworkError(event.reason)) return;
    event.preventDefault();
    logger.warn("a network error escaped its client; the operation that needed it fails and is retried", {
      error: ensureError(event.reason),
    });
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  return () => globalThis.removeEventListener("unhandledrejection", onRejection);
}
