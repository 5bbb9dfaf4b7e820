// deno-lint-ignore-file no-console
/**
 * What one checkpoint of the global (analytics) actor costs once it holds ANALYTICS_RETENTION_MINUTES of minutes:
 * persist (the state's persisted form), JSON.stringify, bytes, and the upsert of its row (PGlite, or PostgreSQL when
 * DATABASE_URL is set). Builds the state by feeding the actor a day of synthetic facts (a few hundred per minute,
 * dense sketches in the newest minutes), then times each step over repeated checkpoints, one new fact between them,
 * as under load. `restore` is what a query answered from memory adds (the engine hands it the persisted form, which
 * http/analytics_window.ts restores). The engine writes the minutes as parts (ActorLogic.persistedParts, migration 021):
 * only those that changed since the previous checkpoint, the rest of the state in its row. VARIANT=whole writes the whole
 * persisted form in the row, as before 021; VARIANT=recent (only the sketched minutes) and VARIANT=tuples (the frozen
 * minutes as arrays of their values) are one-row forms too, for their figures only (neither restores).
 *
 *   deno run -A bench/global_checkpoint.ts                 # PGlite in a temporary directory
 *   KAFKA_BROKERS=none bash scripts/services.sh run deno run -A bench/global_checkpoint.ts   # PostgreSQL
 */
import type { AnalyticsFact } from "../actors/facts.ts";
import { createGlobalLogic, GLOBAL_KEY, type GlobalState } from "../actors/global.ts";
import { persistRollup } from "../actors/rollups.ts";
import { DEFAULT_DOMAIN_SETTINGS } from "../actors/settings.ts";
import type { ActorContext } from "../engine/actor.ts";
import { connectDatabase, type Sql } from "../engine/database.ts";
import { openEmbeddedDatabase } from "../engine/embedded_database.ts";
import { silentLogger } from "../engine/logger.ts";
import { splitParts, type WrittenParts } from "../engine/persisted_parts.ts";
import { encodeStates, saveStates } from "../sql/checkpoints.ts";
import { migrate } from "../sql/migrations.ts";

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 5, 0, 0);
const MINUTES = DEFAULT_DOMAIN_SETTINGS.ANALYTICS_RETENTION_MINUTES + 5;
const PER_MINUTE = 300;
const ROUNDS = 30;
const TYPES = ["page_viewed", "product_viewed", "product_added_to_cart", "checkout_started", "order_completed"];
const CATEGORIES = ["electronics", "apparel", "home", "books", "toys", "garden", "sports", "beauty"];

const logic = createGlobalLogic(DEFAULT_DOMAIN_SETTINGS);
let n = 0;
const fact = (at: number): AnalyticsFact => {
  const i = n++;
  const type = TYPES[i % TYPES.length];
  if (i % 97 === 0) return { fact: "abandonment", factId: `ab-${i}`, at, userId: `u${i % 20_000}`, stage: "cart" };
  return {
    fact: "activity",
    factId: `events-0-${i}`,
    at,
    userId: `u${i % 20_000}`,
    session: `u${i % 20_000}/1`,
    type,
    ...(type === "page_viewed" ? { loadTime: 0.5 + (i % 30) / 10 } : {}),
    ...(type === "order_completed"
      ? { revenueMillis: 49_990, categoryRevenue: { [CATEGORIES[i % CATEGORIES.length]]: 49_990 } }
      : {}),
    ...(i % 11 === 0 ? { reached: ["visited" as const] } : {}),
    ...(type === "checkout_started" ? { cartConverted: true } : {}),
  } as AnalyticsFact;
};
const ctx = (now: number): ActorContext => ({
  now: () => now,
  emit: () => {},
  outputId: (rule) => `bench-${now}-${rule}`,
  setTimer: () => {},
  cancelTimer: () => {},
  timer: () => undefined,
});

let state: GlobalState = logic.initial(GLOBAL_KEY);
for (let m = 0; m < MINUTES; m++) {
  // The newest sketched minutes as a busy shop fills them (dense); the older ones frozen to estimates anyway.
  const count = m >= MINUTES - 31 ? 3_000 : PER_MINUTE;
  for (let k = 0; k < count; k++) {
    const at = T0 + m * MINUTE + Math.floor((k * MINUTE) / count);
    state = logic.handle(state, fact(at), ctx(at)) as GlobalState;
  }
}

const url = Deno.env.get("DATABASE_URL");
const dir = url ? null : await Deno.makeTempDir({ prefix: "global-checkpoint-" });
const embedded = dir ? await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 }) : null;
const sql: Sql = embedded?.sql ?? connectDatabase({ url: url!, maxConnections: 1 });
await migrate(sql);

const VARIANT = Deno.env.get("VARIANT") ?? "parts";
/** Experimental persisted forms: `tuples`, frozen minutes as arrays of their values; `recent`, only sketched minutes. */
function variant(p: { minutes: Record<string, unknown>[] }): unknown {
  if (VARIANT === "recent") return { ...p, minutes: p.minutes.filter((m) => m.users !== null) };
  if (VARIANT !== "tuples") return p;
  const keys = Object.keys(p.minutes[0]).filter((k) => !["users", "sessions", "abandonments"].includes(k));
  const frozen = p.minutes.filter((m) => m.users === null);
  return {
    ...p,
    minutes: p.minutes.filter((m) => m.users !== null),
    frozen: { keys, rows: frozen.map((m) => keys.map((k) => m[k])) },
  };
}
const times = {
  persist: [] as number[],
  persistMinutes: [] as number[],
  stringify: [] as number[],
  upsert: [] as number[],
  restore: [] as number[],
};
/** Per checkpoint: the JSON bytes written (the row, and the minutes written as parts), and how many minutes. */
const writes = { bytes: [] as number[], parts: [] as number[] };
let written: WrittenParts | undefined;
const lsn = async () => (await sql<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`)[0].lsn;
const walFrom = await lsn();
let at = T0 + MINUTES * MINUTE;
for (let round = 0; round < ROUNDS; round++) {
  at += 1_000;
  state = logic.handle(state, fact(at), ctx(at)) as GlobalState;
  const t0 = performance.now();
  const persisted = VARIANT === "parts"
    ? logic.persist(state)
    : variant(logic.persist(state) as { minutes: Record<string, unknown>[] });
  // The engine's path (engine/partition_worker.ts): the minutes that changed since the last checkpoint, and the rest.
  const split = VARIANT === "parts" ? splitParts(logic.persistedParts!, persisted, written) : null;
  const t1 = performance.now();
  const row = { key: GLOBAL_KEY, state: split?.state ?? persisted, timers: {}, lastActiveAt: at };
  const actor = split ? { ...row, parts: split.parts } : row;
  writes.bytes.push(
    JSON.stringify(actor.state).length +
      (split?.parts.upserts ?? []).reduce((sum, u) => sum + JSON.stringify(u.data).length, 0),
  );
  const t2 = performance.now();
  const encoded = encodeStates("global", [actor]);
  await sql.begin((tx) => saveStates(tx, "global", 0, encoded));
  written = split?.written;
  writes.parts.push(split?.parts.upserts.length ?? 0);
  const t3 = performance.now();
  // What a query answered from memory adds: the persisted form restored (engine peek, http/analytics_window.ts).
  logic.restore(JSON.parse(JSON.stringify(persisted)));
  const t4 = performance.now();
  state.minutes.map(persistRollup);
  times.persistMinutes.push(performance.now() - t4);
  times.restore.push(t4 - t3);
  times.persist.push(t1 - t0);
  times.stringify.push(t2 - t1);
  times.upsert.push(t3 - t2);
}
const [{ wal }] = await sql<{ wal: string }[]>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${walFrom})::text as wal`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(JSON.stringify({
  database: url ? "postgresql" : "pglite",
  variant: VARIANT,
  minutes: state.minutes.length,
  sketched: state.minutes.filter((m) => m.users !== null).length,
  medianBytes: median(writes.bytes),
  medianPartsWritten: median(writes.parts),
  walBytesPerCheckpoint: Math.round(Number(wal) / ROUNDS),
  medianMs: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Number(median(v).toFixed(2))])),
}));
await (embedded ? embedded.close() : sql.end());
if (dir) await Deno.remove(dir, { recursive: true });
