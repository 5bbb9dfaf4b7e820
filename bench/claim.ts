// deno-lint-ignore-file no-console
/**
 * `deno task bench claim [--users N] [--partitions N] [--placed-by N] [--rounds N]`: what claiming partitions costs with
 * many actors waiting on a timer. Fills a database of its own with N users (default 100,000), each with a checkpointed
 * state of about 1.6 KB and a pending abandonment timer, spread over the partitions (default 12; `--placed-by`: over
 * that many, as before partitions were added to the topic) by Kafka's partitioner as the engine writes them; then
 * times, through the engine's own claim path (the claim, then the partition's pending timers), claiming one partition,
 * every partition at once (a start-up) and half of them at once (a failover: a second instance takes half), and counts
 * the rows PostgreSQL read from `actor_states` for each (pg_stat_user_tables).
 */
import postgres from "postgres";
import { SqlCheckpointStore } from "../engine/checkpoint.ts";
import type { AnyActorLogic } from "../engine/actor.ts";
import { NO_PROJECTIONS } from "../engine/outputs.ts";
import { ownTimers } from "../engine/partition_worker.ts";
import { partitionForKey } from "../engine/partitioner.ts";
import { migrate } from "../sql/migrations.ts";
import { benchDatabase } from "./database.ts";
import { flag, machine } from "./workload.ts";

const TOPIC = "events";
const GROUP = "bench";
/** Rows per checkpoint transaction while filling. */
const FILL_CHUNK = 5_000;
const T0 = Date.UTC(2026, 10, 1);
/** The engine's pool (engine/backend.ts). */
const POOL = 10;

/** A stand-in for a user state with a cart waiting on its abandonment timer: about 1.6 KB of JSON. */
function userState(n: number) {
  return {
    userId: `user-${n}`,
    seenEventHashes: Array.from({ length: 150 }, (_, i) => (n * 7919 + i * 104729) % 2 ** 52),
    session: { id: `s-${n}`, startedAt: "2026-11-01T00:00:00.000Z", views: 3 },
    cart: { items: { [`sku-${n % 5_000}`]: { quantity: 1, price: 19.99 } }, changedAt: T0 + n },
  };
}

/** Rows PostgreSQL has read from actor_states so far (sequential and index fetches), once every backend flushed. */
async function rowsRead(admin: postgres.Sql): Promise<number> {
  let last = -1;
  for (;;) {
    await admin`select pg_stat_clear_snapshot()`;
    const [{ n }] = await admin<{ n: string }[]>`
      select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) as n from pg_stat_user_tables
       where relname = 'actor_states'`;
    if (Number(n) === last) return last;
    last = Number(n);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Claims `partitions` at once through a pool of its own, as a starting instance does; time, timers and rows read. */
async function claimAll(url: string, admin: postgres.Sql, partitions: readonly number[], count: number) {
  const sql = postgres(url, { max: POOL, onnotice: () => {} });
  await sql`select 1`;
  const store = new SqlCheckpointStore(sql);
  const deps = {
    store,
    logic: { kind: "user" } as AnyActorLogic,
    partitionCounts: new Map([[TOPIC, count]]),
  };
  const before = await rowsRead(admin);
  const started = performance.now();
  const timers = await Promise.all(partitions.map(async (partition) => {
    const tp = { topic: TOPIC, partition };
    await store.claim(tp, GROUP, "bench-instance");
    return (await ownTimers(deps, tp)).size;
  }));
  const ms = performance.now() - started;
  await sql.end();
  return { ms, timers: timers.reduce((a, b) => a + b, 0), rows: (await rowsRead(admin)) - before };
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const users = flag(args, "users", 100_000);
  const count = flag(args, "partitions", 12);
  const placedBy = flag(args, "placed-by", count);
  const rounds = flag(args, "rounds", 3);
  const database = await benchDatabase(Deno.env.get("DATABASE_URL"));
  if (!database.url) throw new Error("DATABASE_URL is not set: run under `deno task bench` (scripts/services.sh)");
  const url = database.url;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await migrate(admin);
    const byPartition = new Map<number, number[]>();
    for (let n = 0; n < users; n++) {
      const p = partitionForKey(`user-${n}`, placedBy);
      byPartition.set(p, [...(byPartition.get(p) ?? []), n]);
    }
    const fillStarted = performance.now();
    const writer = postgres(url, { max: 1, onnotice: () => {} });
    const store = new SqlCheckpointStore(writer);
    for (const [partition, keys] of byPartition) {
      const tp = { topic: TOPIC, partition };
      const { epoch } = await store.claim(tp, GROUP, "filler");
      for (let at = 0; at < keys.length; at += FILL_CHUNK) {
        const upserts = keys.slice(at, at + FILL_CHUNK).map((n) => ({
          key: `user-${n}`,
          state: userState(n),
          timers: { cart: T0 + 30 * 60_000 + n },
          lastActiveAt: T0 + n,
        }));
        const result = await store.commit({
          tp,
          groupId: GROUP,
          epoch,
          nextOffset: at + upserts.length,
          clock: T0,
          kind: "user",
          partitions: placedBy,
          upserts,
          deletes: [],
          projections: NO_PROJECTIONS,
        });
        if (!result.committed) throw new Error("the fill's checkpoint was fenced off");
      }
    }
    await writer.end();
    await admin`vacuum analyze actor_states`;
    const fillS = (performance.now() - fillStarted) / 1000;
    const [{ size }] = await admin`select pg_total_relation_size('actor_states') as size`;
    const plan = await admin.unsafe(
      `explain select key, timers, partition_count from actor_states
        where kind = 'user' and next_timer_at is not null
          and ((partition_count = ${count} and partition = 0)
               or partition_count is null or partition_count < ${count} or partition_count > ${count})`,
    );
    const all = [...Array(count).keys()];
    const scenarios: [string, number[]][] = [
      ["one partition", [0]],
      [`all ${count} at once (start-up)`, all],
      [`half, ${Math.ceil(count / 2)} at once (failover)`, all.filter((p) => p % 2 === 1)],
    ];
    console.log(`\nmachine: ${await machine()}`);
    console.log(
      `command: deno task bench claim --users ${users} --partitions ${count} --placed-by ${placedBy} --rounds ${rounds}`,
    );
    console.log(
      `filled ${users} users with a pending timer over ${placedBy} partitions in ${fillS.toFixed(1)} s; actor_states ${
        (Number(size) / 1e6).toFixed(0)
      } MB`,
    );
    console.log(`plan of one partition's timer read:\n  ${plan.map((r) => r["QUERY PLAN"]).join("\n  ")}`);
    for (const [name, partitions] of scenarios) {
      const runs = [];
      for (let round = 0; round < rounds; round++) runs.push(await claimAll(url, admin, partitions, count));
      runs.sort((a, b) => a.ms - b.ms);
      const median = runs[Math.floor(runs.length / 2)];
      console.log(
        `${name}: median ${median.ms.toFixed(0)} ms (${
          runs.map((r) => r.ms.toFixed(0)).join(", ")
        }), ${median.timers} timers loaded, ${median.rows} actor_states rows read`,
      );
    }
  } finally {
    await admin.end();
    await database.drop();
  }
}
