/**
 * The global actor's minutes stored as parts (ActorLogic.persistedParts, migration 021): a checkpoint writes only the
 * minutes that changed and deletes those that left, on PGlite through SqlCheckpointStore as in MemoryCheckpointStore;
 * loads and reads give the state back whole, also one checkpointed in the one-row form of earlier releases.
 */
import assert from "node:assert/strict";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { GLOBAL_KEY, type GlobalState } from "../../actors/global.ts";
import { domainSettings } from "../../actors/settings.ts";
import { type CheckpointStore, type CheckpointWrite, SqlCheckpointStore } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { NO_PROJECTIONS } from "../../engine/outputs.ts";
import { splitParts, type WrittenParts } from "../../engine/persisted_parts.ts";
import { StatePacker } from "../../engine/state_packer.ts";
import { migrate, readMigrations } from "../../sql/migrations.ts";
import { runGlobal } from "../helpers/global_actor.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);
const SETTINGS = domainSettings({ ANALYTICS_RETENTION_MINUTES: 120 });
const TP = { topic: "analytics", partition: 0 };

/** One page view a minute for `minutes` minutes from `from` minutes after T0, and one order every 7th. */
function facts(from: number, minutes: number): AnalyticsFact[] {
  const out: AnalyticsFact[] = [];
  for (let m = from; m < from + minutes; m++) {
    const at = T0 + m * MIN + 1_000;
    const base = { fact: "activity", at, userId: `u${m % 13}`, session: `s${m % 13}` } as const;
    out.push({ ...base, factId: `events-0-${m}-view`, type: "page_viewed", loadTime: 1 } as AnalyticsFact);
    if (m % 7 === 0) {
      out.push(
        { ...base, factId: `events-0-${m}-order`, type: "order_completed", revenueMillis: 9_000 } as AnalyticsFact,
      );
    }
  }
  return out;
}

/** JSON as the store gives it back, for comparing persisted forms. */
const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

async function withStores(test: (store: CheckpointStore, sql: Sql | null) => Promise<void>): Promise<void> {
  await test(new MemoryCheckpointStore(), null);
  const dir = await Deno.makeTempDir({ prefix: "global-parts-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await test(new SqlCheckpointStore(db.sql), db.sql);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A checkpointer of the global actor as the partition worker does it: persist, split against what it last wrote. */
function checkpointer(store: CheckpointStore, epoch: number, logic = runGlobal(SETTINGS, []).logic, from = 0) {
  let offset = from;
  let written: WrittenParts | undefined;
  return {
    logic,
    /** Commits `state`; returns how many minutes it wrote and deleted. */
    async commit(state: GlobalState): Promise<{ upserts: number; deletes: number }> {
      const split = splitParts(logic.persistedParts!, logic.persist(state), written);
      const write: CheckpointWrite = {
        tp: TP,
        groupId: "g",
        epoch,
        previousOffset: offset,
        nextOffset: offset + 1,
        clock: state.lastEventAt ?? 0,
        kind: "global",
        upserts: [{ key: GLOBAL_KEY, state: split.state, parts: split.parts, timers: {}, lastActiveAt: 1 }],
        deletes: [],
        projections: NO_PROJECTIONS,
      };
      assert.equal((await store.commit(write)).committed, true);
      offset++;
      written = split.written;
      return { upserts: split.parts.upserts.length, deletes: split.parts.deletes.length };
    },
  };
}

Deno.test("a global checkpoint writes only the minutes that changed, deletes those that left, and reads back whole", async () => {
  await withStores(async (store, sql) => {
    const { epoch } = await store.claim(TP, "g", "me");
    const writer = checkpointer(store, epoch);
    const rows = async () => sql ? (await sql`select count(*)::int as n from actor_state_parts`)[0].n : undefined;
    const check = async (state: GlobalState, label: string) => {
      const expected = json(writer.logic.persist(state));
      const loaded = (await store.load("global", [GLOBAL_KEY])).get(GLOBAL_KEY)!;
      assert.deepEqual(json(writer.logic.persist(writer.logic.restore(loaded.state))), expected, `${label}: load`);
      assert.deepEqual(json((await store.read("global", GLOBAL_KEY))!.state), expected, `${label}: read`);
      if (sql) assert.equal(await rows(), state.minutes.length, `${label}: one row a minute`);
    };

    let { state } = runGlobal(SETTINGS, facts(0, 100));
    assert.deepEqual(await writer.commit(state), { upserts: 100, deletes: 0 }, "the first checkpoint writes them all");
    await check(state, "first");

    // One more fact in the latest minute: that minute alone is written.
    state = runGlobal(SETTINGS, facts(99, 1).map((f) => ({ ...f, factId: `${f.factId}-again` })), state).state;
    assert.deepEqual(await writer.commit(state), { upserts: 1, deletes: 0 });
    await check(state, "one fact");

    // Nothing changed: nothing written.
    assert.deepEqual(await writer.commit(state), { upserts: 0, deletes: 0 });

    // Thirty minutes later the oldest have left the retention (and the history, held one more round, with them); the
    // minutes that aged past the sketches and the abandonment hashes are written again, no more.
    state = runGlobal(SETTINGS, facts(100, 60), state).state;
    const moved = await writer.commit(state);
    assert.ok(moved.deletes > 0, "minutes that left the memory are deleted");
    assert.ok(moved.upserts <= 60 + 31, `the new minutes and those that aged: ${moved.upserts}`);
    await check(state, "retired");

    // A removed actor takes its minutes with it.
    await store.commit({
      tp: TP,
      groupId: "g",
      epoch,
      previousOffset: 4,
      nextOffset: 5,
      clock: 0,
      kind: "global",
      upserts: [],
      deletes: [GLOBAL_KEY],
      projections: NO_PROJECTIONS,
    });
    assert.equal((await store.load("global", [GLOBAL_KEY])).size, 0);
    if (sql) assert.equal(await rows(), 0, "its parts are deleted with its row");
  });
});

Deno.test("a global state checkpointed as one row by an earlier release is restored, then stored in parts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "global-parts-upgrade-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    const all = await readMigrations();
    await migrate(db.sql, all.filter((m) => m.id < 21));
    const { state, logic } = runGlobal(SETTINGS, facts(0, 90));
    const persisted = json(logic.persist(state));
    // What the release before migration 021 wrote: the whole persisted form in the row.
    await db.sql`
      insert into actor_states (kind, key, state, timers, partition, last_active_at)
      values ('global', ${GLOBAL_KEY}, ${JSON.stringify(persisted)}::text::jsonb, '{}'::jsonb, 0, 1)`;
    await migrate(db.sql, all);
    const store = new SqlCheckpointStore(db.sql);
    const old = (await store.load("global", [GLOBAL_KEY])).get(GLOBAL_KEY)!;
    assert.deepEqual(json(logic.persist(logic.restore(old.state))), persisted, "the one-row form restores as it was");
    assert.deepEqual((await store.read("global", GLOBAL_KEY))!.state, persisted);

    // Restored, its stored minutes are not known: the first checkpoint writes them all, the row keeps the rest.
    const { epoch } = await store.claim(TP, "g", "me");
    const writer = checkpointer(store, epoch, logic);
    const next = runGlobal(SETTINGS, facts(90, 1), logic.restore(old.state)).state;
    assert.deepEqual(await writer.commit(next), { upserts: 91, deletes: 0 });
    const [row] = await db.sql<{ parts_field: string; has_minutes: boolean }[]>`
      select parts_field, state ? 'minutes' as has_minutes from actor_states where kind = 'global'`;
    assert.deepEqual({ ...row }, { parts_field: "minutes", has_minutes: false });
    const loaded = (await store.load("global", [GLOBAL_KEY])).get(GLOBAL_KEY)!;
    assert.deepEqual(json(logic.persist(logic.restore(loaded.state))), json(logic.persist(next)));
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state restored from stored parts has its minutes written whole again, stale ones deleted", async () => {
  await withStores(async (store) => {
    const { epoch } = await store.claim(TP, "g", "me");
    const first = checkpointer(store, epoch);
    const { state } = runGlobal(SETTINGS, facts(0, 50));
    await first.commit(state);
    // A new owner restores it: it does not know what is stored, so it replaces every minute, keeping none it lacks.
    const { epoch: next } = await store.claim(TP, "g", "other");
    const loaded = (await store.load("global", [GLOBAL_KEY])).get(GLOBAL_KEY)!;
    const restored = first.logic.restore(loaded.state);
    const fewer = { ...restored, minutes: restored.minutes.slice(10) };
    const second = checkpointer(store, next, first.logic, 1);
    assert.deepEqual(await second.commit(fewer), { upserts: 40, deletes: 0 });
    const back = (await store.load("global", [GLOBAL_KEY])).get(GLOBAL_KEY)!;
    assert.equal((back.state as { minutes: unknown[] }).minutes.length, 40, "the minutes it lacked are gone");
  });
});

Deno.test("a global state unpacked (restored from its packed form) writes only its changed minutes next", () => {
  const logic = runGlobal(SETTINGS, []).logic;
  const spec = logic.persistedParts!;
  const { state } = runGlobal(SETTINGS, facts(0, 100));
  // As the partition worker packs a clean actor and unpacks it: what it takes as written is the restored state's.
  const packer = new StatePacker();
  const restored = logic.restore(packer.unpack(packer.pack(logic.persist(state))));
  const written = splitParts(spec, logic.persist(restored), undefined).written;
  const next = runGlobal(SETTINGS, facts(99, 1).map((f) => ({ ...f, factId: `${f.factId}-again` })), restored).state;
  const split = splitParts(spec, logic.persist(next), written);
  assert.equal(split.parts.upserts.length, 1, "the minute the fact changed, not all 100");
  assert.deepEqual(split.parts.deletes, []);
});
