// deno-lint-ignore-file no-console
/**
 * `deno task bench store [--states N] [--rounds N] [--fillfactor N]`: PostgreSQL's side of a user partition's checkpoint
 * alone: `saveStates` of N user states per transaction, four partitions, every state rewritten each round as in a busy
 * engine, on the migrated schema. The states are the user actor's persisted form over the benchmarks' input
 * (bench/workload.ts): each round hands every user its next product view, so a state grows from one event to `rounds`
 * as the engine benchmark's do. Each row's `last_active_at` moves every round (the event time of the user's latest
 * event), a third of the users have a pending timer whose deadline moves every round, and one in twenty gains or loses
 * its timer every round (a cart filled, then ordered). `--fillfactor` sets `actor_states` to
 * another fill factor first (the schema's is 70, sql/migrations/009_fillfactor.sql), to compare. Prints the share of
 * updates PostgreSQL made heap-only (HOT: no index entry written) and the WAL written per state.
 */
import postgres from "postgres";
import { encodeStates, saveStates } from "../sql/checkpoints.ts";
import { migrate } from "../sql/migrations.ts";
import { listenerPid, portOf, treeCpuSeconds } from "./process_cpu.ts";
import { benchEvent, DEFAULT_PRODUCTS, flag, machine } from "./workload.ts";
import type { ActorContext } from "../engine/actor.ts";
import type { StoredEvent } from "../actors/events.ts";
import { userLogic, type UserState } from "../actors/user.ts";

const PARTITIONS = 4;
const WARM_UP_ROUNDS = 2;

/** A user's pending timers in a round, as the user actor's cart timer sets and clears them. */
function userTimers(i: number, round: number, lastActiveAt: number): Record<string, number> {
  const pending = i % 3 === 0 || (i % 20 === 1 && round % 2 === 1);
  return pending ? { cart: lastActiveAt + 30 * 60_000 } : {};
}

/** A context for the user actor that keeps nothing it emits: the benchmark measures only the states it leaves. */
const QUIET: ActorContext = {
  now: () => 0,
  emit: () => {},
  outputId: (rule) => rule,
  setTimer: () => {},
  cancelTimer: () => {},
  timer: () => undefined,
};

/** Every user's state after its next event of the benchmarks' input (user n's k-th event is event k · users + n). */
async function nextStates(states: UserState[], round: number): Promise<void> {
  for (let n = 0; n < states.length; n++) {
    const event = benchEvent(round * states.length + n, states.length, DEFAULT_PRODUCTS) as StoredEvent;
    states[n] = await userLogic.handle(states[n], event, QUIET);
  }
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const states = flag(args, "states", 2_500);
  const rounds = flag(args, "rounds", 12);
  const fillfactor = flag(args, "fillfactor", 0);
  const sql = postgres(Deno.env.get("DATABASE_URL")!, { max: 2, onnotice: () => {} });
  await migrate(sql);
  await sql`truncate actor_states cascade`; // actor_state_parts refers to it (migration 021)
  if (fillfactor > 0) await sql.unsafe(`alter table actor_states set (fillfactor = ${Math.trunc(fillfactor)})`);
  const [{ reloptions }] = await sql`select reloptions from pg_class where relname = 'actor_states'`;
  let walBytes = 0;
  const server = listenerPid(portOf(Deno.env.get("DATABASE_URL")!) ?? -1) ?? -1;
  let serverCpu = 0;
  const times: number[] = [];
  const users = Array.from({ length: PARTITIONS * states }, (_, n) => userLogic.initial(`user-${n}`));
  let jsonBytes = 0;
  for (let round = 0; round < rounds; round++) {
    await nextStates(users, round);
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const rows = Array.from({ length: states }, (_, i) => {
        const user = users[partition * states + i];
        const lastActiveAt = Date.parse(user.lastSeenAt!);
        return {
          key: user.userId,
          state: userLogic.persist(user),
          timers: userTimers(i, round, lastActiveAt),
          lastActiveAt,
        };
      });
      const encoded = encodeStates("user", rows);
      const [{ lsn: before }] = await sql`select pg_current_wal_insert_lsn() as lsn`;
      const cpuBefore = treeCpuSeconds(server);
      const started = performance.now();
      await sql.begin((tx) => saveStates(tx, "user", partition, encoded, PARTITIONS));
      if (round < WARM_UP_ROUNDS) continue;
      jsonBytes += encoded.states.length - (states - 1);
      times.push(performance.now() - started);
      serverCpu += treeCpuSeconds(server) - cpuBefore;
      const [{ bytes }] = await sql`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), ${before}::pg_lsn) as bytes`;
      walBytes += Number(bytes);
    }
  }
  const [{ size }] = await sql`select pg_total_relation_size('actor_states') as size`;
  const [{ stored }] =
    await sql`select avg(pg_column_size(state))::int as stored from actor_states where kind = 'user'`;
  // Closing the pool's sessions flushes their table statistics, which a live session reports only now and then.
  await sql.end();
  const stats = postgres(Deno.env.get("DATABASE_URL")!, { max: 1, onnotice: () => {} });
  const [{ updated, hot }] = await stats<{ updated: string; hot: string }[]>`
    select n_tup_upd as updated, n_tup_hot_upd as hot from pg_stat_user_tables where relname = 'actor_states'`;
  await stats.end();
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`\nmachine: ${await machine()}`);
  console.log(`command: deno task bench store --states ${states} --rounds ${rounds} --fillfactor ${fillfactor}`);
  console.log(
    `actor_states ${JSON.stringify(reloptions ?? [])}: ${states} states of ${
      (jsonBytes / times.length / states).toFixed(0)
    } B of JSON (${stored} B stored at the end) per transaction, p50 ${
      times[Math.floor(times.length / 2)].toFixed(0)
    } ms, mean ${
      mean.toFixed(0)
    } ms (${times.length} transactions after ${WARM_UP_ROUNDS} warm-up rounds); table and indexes ${
      (Number(size) / 1e6).toFixed(0)
    } MB after ${rounds} rounds; ${hot} of ${updated} updates heap-only (${
      (100 * Number(hot) / Math.max(1, Number(updated))).toFixed(0)
    }%), WAL ${(walBytes / times.length / states).toFixed(0)} B and PostgreSQL's CPU ${
      (1e6 * serverCpu / times.length / states).toFixed(0)
    } µs per state`,
  );
}
