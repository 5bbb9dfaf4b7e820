/**
 * Stops kafkajs's idle 1 ms polling loop. kafkajs 2.2.4 (its last release) re-schedules a check of
 * a connection's pending requests after every check, even when nothing is pending and nothing is
 * throttled; with the default `throttledUntil` of -1 the delay is negative, so every connection that
 * has received one response wakes the event loop every millisecond for ever (and Deno prints
 * "TimeoutNegativeWarning"). Upstream: tulios/kafkajs#1704, #1556, #1751 (fixes open, unreleased).
 * The replacement schedules a check only when a request is waiting, at the end of the throttle
 * or after kafkajs's own 10 ms interval; a waiting request is otherwise sent when a response frees
 * an in-flight slot, as before. tests/unit/kafkajs_request_queue_test.ts checks both paths.
 */
// @ts-types="./kafkajs_request_queue.d.ts"
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

/** kafkajs's CHECK_PENDING_REQUESTS_INTERVAL (src/network/requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** The queue's fields the replacement relies on. */
interface QueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
}

/** The original method, kept for the test that shows the loop. */
export const originalScheduleCheck = RequestQueue.prototype.scheduleCheckPendingRequests;

function scheduleCheckPendingRequests(this: QueueInternals): void {
  if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
  const untilThrottleEnds = this.throttledUntil - Date.now();
  const delay = untilThrottleEnds > 0 ? untilThrottleEnds : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delay);
}

let installed = false;

/** Replaces kafkajs's pending-request scheduling (idempotent); the Kafka adapter calls it before creating clients. */
export function installRequestQueueFix(): void {
  if (installed) return;
  installed = true;
  RequestQueue.prototype.scheduleCheckPendingRequests =
    scheduleCheckPendingRequests as unknown as typeof RequestQueue.prototype.scheduleCheckPendingRequests;
}
