/**
 * The store's TTL sweep and the worker's memory agree: an actor whose row a checkpoint's sweep deleted is not kept in
 * memory. Kept there (its timer had just fired, so the housekeeping round had not expired it yet), a record for it
 * revived it in memory, and its next checkpoint wrote it onto no row: for a logic with a parts field
 * (ActorLogic.persistedParts, the global actor's minutes), only the parts that changed, so the checkpoint held a state
 * with most of them missing while memory had them all.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { LogRecord, RecordBatch } from "../../engine/log.ts";
import { claim, InertConsumer, noHeartbeat, T0, tp } from "../helpers/partition_worker.ts";

interface Ledger {
  readonly key: string;
  readonly items: readonly { readonly n: number }[];
  readonly woke: number;
}
type Message = { readonly at: number; readonly add: number; readonly alarm?: number };

/** Items by number (unchanged ones stay the same objects), a timer a message may arm, and how often it fired. */
const ledgerLogic: ActorLogic<Ledger, Message> = {
  kind: "ledger",
  initial: (key) => ({ key, items: [], woke: 0 }),
  decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
  eventTime: (m) => m.at,
  handle: (state, m, ctx) => {
    if (m.alarm !== undefined) ctx.setTimer("wake", m.alarm);
    return { ...state, items: [...state.items.filter((i) => i.n !== m.add), { n: m.add }].sort((a, b) => a.n - b.n) };
  },
  onTimer: (state) => ({ ...state, woke: state.woke + 1 }),
  persist: (state) => state,
  restore: (data) => data as Ledger,
  persistedParts: { field: "items", key: "n" },
};

const SECOND = 1_000;
const TTL = 60 * SECOND;

let offset = 0;
function messages(appendedAt: number, ...values: Message[]): RecordBatch {
  const records: LogRecord[] = values.map((value) => ({
    ...tp,
    offset: offset++,
    key: "k",
    value: new TextEncoder().encode(JSON.stringify(value)),
    headers: {},
    timestamp: appendedAt,
  }));
  return { ...tp, records, highWatermark: offset, from: records[0].offset, end: offset };
}

Deno.test("an actor the store's TTL sweep deleted is not kept in memory: a record for it does not write a partial state", async () => {
  offset = 0;
  let wall = T0;
  const consumer = new InertConsumer();
  const store = new MemoryCheckpointStore(() => wall);
  const worker = await claim(consumer, () => wall, store, { logic: ledgerLogic, stateTtlMs: TTL, idleClockMs: SECOND });
  await worker.handleBatch(
    messages(T0, { at: T0, add: 1 }, { at: T0, add: 2, alarm: T0 + 120 * SECOND }),
    noHeartbeat,
  );
  await worker.checkpoint(); // the first checkpoint sweeps; the next sweep is a minute away
  consumer.end = offset;

  // Idle: the clock follows the wall and the timer fires, long after the actor's last record; it is now dirty.
  wall = T0 + 200 * SECOND;
  await worker.tick();
  assert.ok(await store.read("ledger", "k"), "its timer kept it");

  // Its checkpoint writes it, and that checkpoint's sweep deletes its row: inactive past the TTL, no timer left.
  wall += 61 * SECOND;
  await worker.checkpoint();
  assert.equal(await store.read("ledger", "k"), null, "the sweep deleted the row");

  // A record for it before the housekeeping round: what memory holds and what the checkpoint holds must agree.
  await worker.handleBatch(messages(wall, { at: wall, add: 3 }), noHeartbeat);
  await worker.checkpoint();
  const stored = (await store.read("ledger", "k"))?.state;
  assert.deepEqual(stored, worker.peek("k"), "the checkpoint holds the state memory holds");
  await worker.close();
});
