/** kafkajs's request queue, patched, sends every request and leaves no timer behind when idle. */
import assert from "node:assert/strict";
// @ts-types="../../engine/kafkajs_request_queue.d.ts"
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";
import { installRequestQueueFix, originalScheduleCheck } from "../../engine/kafkajs_request_queue.ts";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function queue(maxInFlightRequests: number): RequestQueue {
  return new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: silent,
  });
}

/** Pushes a request that records its correlation id in `sent` when the queue sends it. */
function push(q: RequestQueue, correlationId: number, sent: number[]): void {
  q.push({
    entry: { correlationId, resolve() {}, reject() {} },
    expectResponse: true,
    sendRequest: () => sent.push(correlationId),
  });
}

const respond = (q: RequestQueue, correlationId: number) => q.fulfillRequest({ correlationId, payload: null, size: 0 });

Deno.test("kafkajs 2.2.4's own scheduling arms a timer with nothing pending (the loop the fix removes)", () => {
  const q = queue(1);
  originalScheduleCheck.call(q);
  const armed = q.throttleCheckTimeoutId !== null;
  q.destroy();
  assert.ok(armed, "kafkajs no longer schedules idle checks: engine/kafkajs_request_queue.ts can be dropped");
});

Deno.test("patched queue: a waiting request goes out when a response frees the slot; idle leaves no timer", async () => {
  installRequestQueueFix();
  const q = queue(1);
  const sent: number[] = [];
  push(q, 1, sent);
  push(q, 2, sent);
  assert.deepEqual(sent, [1], "one in flight at a time");
  assert.equal(q.pending.length, 1);
  respond(q, 1);
  assert.deepEqual(sent, [1, 2]);
  respond(q, 2);
  assert.equal(q.pending.length, 0);
  // The check armed while request 2 waited fires once, finds nothing and does not arm another.
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(q.throttleCheckTimeoutId, null, "no check scheduled while nothing is pending");
  q.destroy();
});

Deno.test("patched queue: a request held back by broker throttling is sent when the throttle ends", async () => {
  installRequestQueueFix();
  const q = queue(5);
  const sent: number[] = [];
  q.maybeThrottle(30);
  push(q, 7, sent);
  assert.deepEqual(sent, [], "throttled: the request waits");
  assert.notEqual(q.throttleCheckTimeoutId, null, "a check is scheduled for the end of the throttle");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(sent, [7]);
  respond(q, 7);
  assert.equal(q.throttleCheckTimeoutId, null);
  q.destroy();
});
