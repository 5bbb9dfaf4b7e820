/**
 * A logic with a parts field (ActorLogic.persistedParts) through a partition worker: each checkpoint writes the elements
 * that changed since the last one that committed and deletes those gone; a state restored by a new owner writes them
 * all once, replacing what was stored. The store is MemoryCheckpointStore, which keeps parts as the SQL store does.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { RecordBatch } from "../../engine/log.ts";
import { StatePacker } from "../../engine/state_packer.ts";
import { claim, InertConsumer, noHeartbeat, record, T0, tp } from "../helpers/partition_worker.ts";

interface Item {
  readonly n: number;
  readonly count: number;
}
interface Ledger {
  readonly key: string;
  readonly items: readonly Item[];
}
type Message = { readonly at: number; readonly add?: number; readonly drop?: number };

/** Counts per number, ascending; a message replaces only the item it counts (the others stay the same objects). */
const ledgerLogic: ActorLogic<Ledger, Message> = {
  kind: "ledger",
  initial: (key) => ({ key, items: [] }),
  decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
  eventTime: (m) => m.at,
  handle: (state, m) => {
    if (m.drop !== undefined) return { ...state, items: state.items.filter((i) => i.n !== m.drop) };
    const n = m.add!;
    const kept = state.items.filter((i) => i.n !== n);
    const count = (state.items.find((i) => i.n === n)?.count ?? 0) + 1;
    return { ...state, items: [...kept, { n, count }].sort((a, b) => a.n - b.n) };
  },
  persist: (state) => state,
  restore: (data) => data as Ledger,
  persistedParts: { field: "items", key: "n" },
};

let offset = 0;
function messages(...values: Message[]): RecordBatch {
  const records = values.map((value) => record(offset++, value, "k"));
  return { ...tp, records, highWatermark: offset, from: records[0].offset, end: offset };
}

Deno.test("a worker's checkpoints write only the parts that changed, delete those gone, and a new owner replaces them all", async () => {
  offset = 0;
  const store = new MemoryCheckpointStore(() => T0);
  const stored = async () => (await store.load("ledger", ["k"])).get("k")?.state;
  const worker = await claim(new InertConsumer(), () => T0, store, { logic: ledgerLogic });
  await worker.handleBatch(messages({ at: T0, add: 1 }, { at: T0, add: 2 }, { at: T0, add: 3 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 3, "the first checkpoint writes every item");
  assert.deepEqual(await stored(), {
    key: "k",
    items: [{ n: 1, count: 1 }, { n: 2, count: 1 }, { n: 3, count: 1 }],
  });

  await worker.handleBatch(messages({ at: T0, add: 2 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 4, "one item changed: one written");

  await worker.handleBatch(messages({ at: T0, drop: 1 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 4, "a dropped item writes none");
  assert.deepEqual(await stored(), { key: "k", items: [{ n: 2, count: 2 }, { n: 3, count: 1 }] }, "and is deleted");
  assert.deepEqual(
    (await store.read("ledger", "k"))?.state,
    { key: "k", items: [{ n: 2, count: 2 }, { n: 3, count: 1 }] },
    "reads give the state whole",
  );
  await worker.close();

  // A new owner restores the state: it does not know which items are stored, so its first checkpoint writes them all.
  const next = await claim(new InertConsumer(), () => T0, store, { logic: ledgerLogic });
  await next.handleBatch(messages({ at: T0, add: 4 }), noHeartbeat);
  await next.checkpoint();
  assert.equal(store.partsWritten, 4 + 3);
  assert.deepEqual(await stored(), { key: "k", items: [{ n: 2, count: 2 }, { n: 3, count: 1 }, { n: 4, count: 1 }] });
  await next.handleBatch(messages({ at: T0, add: 4 }), noHeartbeat);
  await next.checkpoint();
  assert.equal(store.partsWritten, 4 + 3 + 1, "then only what changed again");
  await next.close();
});

Deno.test("an actor packed while idle and unpacked by its next message writes only the parts that changed", async () => {
  offset = 0;
  const store = new MemoryCheckpointStore(() => T0);
  const worker = await claim(new InertConsumer(), () => T0, store, { logic: ledgerLogic, packer: new StatePacker() });
  await worker.handleBatch(messages({ at: T0, add: 1 }, { at: T0, add: 2 }, { at: T0, add: 3 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 3);
  assert.equal(await worker.pack(Number.MAX_SAFE_INTEGER), 1, "the checkpointed actor is packed");

  // Its next message unpacks it: the items stored are those it was packed with, and only the one changed is written.
  // Every one was written again (the global actor: a day of minutes, about 1 MB, after each idle spell).
  await worker.handleBatch(messages({ at: T0, add: 2 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 3 + 1, "one item changed: one written");
  assert.deepEqual((await store.load("ledger", ["k"])).get("k")?.state, {
    key: "k",
    items: [{ n: 1, count: 1 }, { n: 2, count: 2 }, { n: 3, count: 1 }],
  });

  // Packed again and unpacked by a message that drops an item: none written, that one deleted.
  assert.equal(await worker.pack(Number.MAX_SAFE_INTEGER), 1);
  await worker.handleBatch(messages({ at: T0, drop: 3 }), noHeartbeat);
  await worker.checkpoint();
  assert.equal(store.partsWritten, 3 + 1, "a dropped item writes none");
  assert.deepEqual((await store.load("ledger", ["k"])).get("k")?.state, {
    key: "k",
    items: [{ n: 1, count: 1 }, { n: 2, count: 2 }],
  });
  await worker.close();
});
