/**
 * An event produced straight to the log without `eventId` / `occurredAt` takes them from its first
 * append (position, time). When it comes back through `dlq replay` (after a fix, or after an upgrade
 * that accepts what an earlier version dead-lettered), the re-injected record names that first
 * append (ORIGIN_HEADERS): the event is dated when the service appended it, and two re-injections of
 * one DLQ record are one event (README, "DLQ": "dropped by its eventId").
 */
import assert from "node:assert/strict";
import { decodeEvent } from "../../actors/decode.ts";
import type { StoredEvent } from "../../actors/events.ts";
import { createUserLogic } from "../../actors/user.ts";
import type { UserState } from "../../actors/user_state.ts";
import type { ActorContext } from "../../engine/actor.ts";
import { deadLetter } from "../../engine/dead_letter.ts";
import { replayDlq, REPLAYED_FROM_HEADER } from "../../engine/dlq_replay.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { migrate } from "../../sql/migrations.ts";

const T0 = Date.UTC(2026, 0, 5, 10, 0, 0); // the service appends the event
const T1 = Date.UTC(2026, 0, 8, 9, 30, 0); // three days later: upgraded engine, `dlq replay`

/** A service's event as SPEC allows it on the log: no eventId, no occurredAt, no receivedAt. */
const serviceEvent = JSON.stringify({ type: "page_viewed", userId: "svc-user", properties: { url: "/home" } });

function stubContext(): ActorContext {
  const timers = new Map<string, number>();
  return {
    now: () => T1,
    emit: () => {},
    outputId: (rule) => rule,
    setTimer: (name, at) => void timers.set(name, at),
    cancelTimer: (name) => void timers.delete(name),
    timer: (name) => timers.get(name),
  };
}

/** Appends the service's event at T0, dead-letters it (as this version does: with the source's append time), replays the DLQ at T1. */
async function replayedRecords(times: number): Promise<{ original: LogRecord; replayed: LogRecord[] }> {
  let clock = T0;
  const log = new MemoryLog(() => clock);
  await log.ensureTopics([{ topic: "events", partitions: 1 }, { topic: "dlq", partitions: 1 }]);
  const [original] = log.appendNow([{ topic: "events", key: "svc-user", value: serviceEvent }]);
  // Dead-lettered for a reason since fixed (the previous version: "invalid event: eventId: ...; receivedAt: ...").
  log.appendNow([deadLetter("dlq", original, new ValidationError("invalid event: eventId: Invalid input"))]);

  clock = T1;
  const dir = await Deno.makeTempDir({ prefix: "dlq-origin-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const summary = await replayDlq({
      consumer: log.consumer(),
      producer: log.producer(),
      sql: db.sql,
      dlqTopic: "dlq",
      groupId: "g",
      idleMs: 300,
    });
    assert.equal(summary.replayed, 1);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
  // An append that failed without an answer after landing: the same DLQ record re-injected again
  // (README "DLQ"; dlq_replay.ts: "a crash between the two can re-inject a record twice").
  const first = log.all("events")[1];
  for (let i = 1; i < times; i++) {
    log.appendNow([{ topic: "events", key: first.key!, value: first.value!, headers: first.headers }]);
  }
  return { original, replayed: log.all("events").slice(1) };
}

Deno.test("a dead-lettered service event replayed by `dlq replay` keeps the time it was first appended at", async () => {
  const { original, replayed } = await replayedRecords(1);
  assert.equal(replayed.length, 1);
  const event = decodeEvent(replayed[0]);
  // What the engine would have derived had it accepted the record when it was appended:
  const direct = decodeEvent(original);
  assert.equal(direct.occurredAt, new Date(T0).toISOString());
  assert.equal(
    event.occurredAt,
    direct.occurredAt,
    `replayed three days later, the page view is dated ${event.occurredAt} instead of ${direct.occurredAt}`,
  );
});

Deno.test("the same DLQ record re-injected twice is one event with one derived eventId", async () => {
  const { replayed } = await replayedRecords(2);
  assert.equal(replayed.length, 2);
  assert.equal(replayed[0].headers[REPLAYED_FROM_HEADER], replayed[1].headers[REPLAYED_FROM_HEADER]);
  const events = replayed.map(decodeEvent);
  const logic = createUserLogic();
  let state: UserState = logic.initial("svc-user");
  for (const event of events) state = await logic.handle(state, event as StoredEvent, stubContext()) as UserState;
  assert.equal(
    events[0].eventId,
    events[1].eventId,
    "two copies of one DLQ record got different eventIds",
  );
  assert.equal(state.eventCount, 1, `the user counted ${state.eventCount} page views for one event`);
});
