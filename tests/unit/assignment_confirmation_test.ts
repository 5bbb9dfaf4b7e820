import assert from "node:assert/strict";
import { AssignmentConfirmation } from "../../engine/assignment_confirmation.ts";

/** A confirmation on a clock the test moves; heartbeats are stale after 3 s. */
function setup() {
  let now = 1_000;
  const confirmation = new AssignmentConfirmation(3_000, () => now);
  return { confirmation, advance: (ms: number) => now += ms, now: () => now };
}

Deno.test("two heartbeats of one generation answered since the fence confirm the assignment", () => {
  const { confirmation, advance, now } = setup();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  const fenced = now();
  assert.equal(confirmation.confirmedSince(fenced), false, "no heartbeat yet");
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), false, "one heartbeat: it may have been asked before the fence");
  advance(1_000);
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), true);
  assert.equal(confirmation.confirmedSince(fenced + 1), false, "the first heartbeat was answered before that time");
});

Deno.test("heartbeats answered before the fence, of two generations, or long ago confirm nothing", () => {
  const { confirmation, advance, now } = setup();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  confirmation.heartbeat(4);
  advance(1_000);
  const fenced = now();
  advance(1);
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), false, "the earlier of the two came before the fence");
  advance(1_000);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), false, "two generations");
  advance(1_000);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), true);
  advance(3_001);
  assert.equal(confirmation.confirmedSince(fenced), false, "no heartbeat answered for longer than the stale time");
});

Deno.test("a rebalance, or an assignment not yet handed to the listener, confirms nothing until heartbeats follow it", () => {
  const { confirmation, advance, now } = setup();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  const fenced = now();
  advance(1);
  confirmation.heartbeat(4);
  advance(1_000);
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), true);

  confirmation.rebalancing();
  assert.equal(confirmation.confirmedSince(fenced), false, "rebalancing");
  advance(500);
  confirmation.heartbeat(5); // answered between the join and the sync: the listener has not the assignment yet
  advance(500);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), false, "still rebalancing");
  confirmation.assignmentReceived();
  advance(1_000);
  confirmation.heartbeat(5);
  advance(1_000);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), false, "the assignment has not reached the listener");
  confirmation.assignmentHandled();
  assert.equal(confirmation.confirmedSince(fenced), true);

  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  assert.equal(confirmation.confirmedSince(fenced), false, "heartbeats before the latest assignment do not count");
});

Deno.test("only the latest heartbeat need be recent; an assignment still pending behind another confirms nothing", () => {
  const { confirmation, advance, now } = setup();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  const fenced = now();
  confirmation.heartbeat(4);
  advance(3_500); // the coordinator was slow to answer the next one
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), true, "the latest heartbeat is fresh, both are of one generation");

  // Two assignments in a row; the listener has the first, the second is still on its way.
  confirmation.assignmentReceived();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  advance(1_000);
  confirmation.heartbeat(5);
  advance(1_000);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), false, "the latest assignment has not reached the listener");
  confirmation.assignmentHandled();
  assert.equal(confirmation.confirmedSince(fenced), true);
});

Deno.test("a crash leaves the group: heartbeats answered before it confirm nothing, only a new assignment's do", () => {
  const { confirmation, advance, now } = setup();
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  const fenced = now();
  confirmation.heartbeat(4);
  advance(1_000);
  confirmation.heartbeat(4);
  assert.equal(confirmation.confirmedSince(fenced), true);
  // The consumer crashes; within the stale window, its last two heartbeats used to still confirm the assignment.
  confirmation.left();
  advance(500);
  assert.equal(confirmation.confirmedSince(fenced), false, "out of the group");
  confirmation.heartbeat(4); // a late answer to a heartbeat asked before the crash
  assert.equal(confirmation.confirmedSince(fenced), false, "no assignment since the crash");
  // kafkajs joins again and the group hands it an assignment.
  confirmation.assignmentReceived();
  confirmation.assignmentHandled();
  confirmation.heartbeat(5);
  advance(1_000);
  confirmation.heartbeat(5);
  assert.equal(confirmation.confirmedSince(fenced), true);
});
