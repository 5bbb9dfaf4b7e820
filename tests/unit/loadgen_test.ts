import assert from "node:assert/strict";
import { incomingEvent, type StoredEvent, storedEvent } from "../../actors/events.ts";
import { userLogic } from "../../actors/user.ts";
import type { LogRecord } from "../../engine/log.ts";
import { Store } from "../../scripts/loadgen.ts";
import { prng } from "../helpers/prng.ts";
import { replayPartition } from "../helpers/replay.ts";

Deno.test("loadgen's simulated events are valid, with page load times in seconds (SPEC), not milliseconds", () => {
  const store = new Store(prng(7), 50);
  const loadTimes: number[] = [];
  for (let i = 0; i < 5_000; i++) {
    const event = store.next();
    const parsed = incomingEvent.safeParse(event);
    assert.ok(parsed.success, JSON.stringify(event));
    const loadTime = (event.properties as { loadTime?: number }).loadTime;
    if (event.type === "page_viewed" && loadTime !== undefined) loadTimes.push(loadTime);
  }
  assert.ok(loadTimes.length > 100);
  assert.ok(
    Math.min(...loadTimes) >= 0.2 && Math.max(...loadTimes) <= 2,
    `${Math.min(...loadTimes)}–${Math.max(...loadTimes)}`,
  );
});

Deno.test("loadgen's fraudulent-looking orders raise fraud_suspected under the default rules, by day too", async () => {
  // A run of the README's `--rate 100 --duration 60`, dated from 12:00 UTC, outside the night window (00:00–06:00).
  const store = new Store(prng(11), 200);
  const start = Date.UTC(2026, 11, 7, 12);
  const records: LogRecord[] = [];
  const large = new Set<string>();
  for (let i = 0; i < 6_000; i++) {
    const event = store.next();
    const at = new Date(start + i * 10).toISOString();
    const stored = storedEvent.parse({
      ...event,
      eventId: crypto.randomUUID(),
      occurredAt: at,
      receivedAt: at,
    }) as StoredEvent;
    if (stored.type === "order_completed" && stored.properties.total > 10_000) large.add(stored.properties.orderId);
    const value = new TextEncoder().encode(JSON.stringify(stored));
    records.push({ topic: "events", partition: 0, offset: i, key: stored.userId!, value, headers: {}, timestamp: 0 });
  }
  const { outputs } = await replayPartition(userLogic, records);
  const suspected = new Set(
    outputs.map((o) => o.value as { type?: string; details?: { orderId?: string } })
      .filter((alert) => alert.type === "fraud_suspected").map((alert) => alert.details!.orderId!),
  );
  assert.ok(large.size > 0, "the run has orders large enough to look fraudulent");
  // Only by night, or from a shopper with 3+ orders, did they reach 0.7: a large first order scores 0.6 by day.
  const missed = [...large].filter((orderId) => !suspected.has(orderId));
  assert.deepEqual(missed, [], `${missed.length} of ${large.size} large orders raised no fraud_suspected`);
});

Deno.test("loadgen's events carry eventIds of their own, so that a batch posted again after a 503 counts once", async () => {
  const store = new Store(prng(11), 300);
  const events = [...Array.from({ length: 5_000 }, () => store.next()), store.inventory(), store.inventory()];
  const ids = events.map((e) => e.eventId);
  assert.ok(ids.every((id) => typeof id === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-4/.test(id)), "a v4 UUID each");
  assert.equal(new Set(ids).size, events.length, "no id given twice");
  // Another run with the same seed is not a repeat of this one: its events would be dropped as duplicates.
  assert.notEqual(new Store(prng(11), 300).next().eventId, ids[0]);

  // What the user actor makes of a shopper's batch posted twice (a 503 after it landed): each event counts once.
  const userId = events[0].userId!;
  const start = Date.UTC(2026, 11, 7, 12);
  const mine = events.filter((e) => e.userId === userId).map((event, i) => {
    const at = new Date(start + i * 1000).toISOString();
    return storedEvent.parse({ ...event, occurredAt: at, receivedAt: at }) as StoredEvent;
  });
  const records = (input: StoredEvent[]): LogRecord[] =>
    input.map((stored, offset) => ({
      topic: "events",
      partition: 0,
      offset,
      key: userId,
      value: new TextEncoder().encode(JSON.stringify(stored)),
      headers: {},
      timestamp: 0,
    }));
  const once = await replayPartition(userLogic, records(mine));
  const twice = await replayPartition(userLogic, records([...mine, ...mine]));
  const state = twice.states.get(userId) as { eventCount: number; duplicateEvents: number };
  assert.equal(state.eventCount, mine.length);
  assert.equal(state.duplicateEvents, mine.length);
  assert.deepEqual({ ...state, duplicateEvents: 0 }, { ...(once.states.get(userId) as object), duplicateEvents: 0 });
});
