// deno-lint-ignore-file no-console
/**
 * `deno task bench store [--states N] [--rounds N] [--fillfactor N]`: PostgreSQL's side of a user partition's checkpoint
 * alone: `saveStates` of N user-sized states (1.6 KB of JSON) per transaction, four partitions, every state rewritten
 * each round as in a busy engine, on the migrated schema. `--fillfactor` sets `actor_states` to another fill factor
 * first (the schema's is 70, sql/migrations/009_fillfactor.sql), to compare.
 */
import postgres from "postgres";
import { encodeStates, saveStates } from "../sql/checkpoints.ts";
import { migrate } from "../sql/migrations.ts";
import { flag, machine } from "./workload.ts";

const PARTITIONS = 4;
const WARM_UP_ROUNDS = 2;

/** A stand-in for a user state: its size, and a part that changes every round. */
function userState(key: number, round: number) {
  return {
    userId: `user-${key}`,
    round,
    seenEventHashes: Array.from({ length: 170 }, (_, i) => (key * 7919 + i * 104729 + round) % 2 ** 52),
    session: { id: `s-${key}-${Math.floor(round / 4)}`, startedAt: "2026-11-01T00:00:00.000Z", views: round },
    cart: { items: {} },
  };
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const states = flag(args, "states", 2_500);
  const rounds = flag(args, "rounds", 12);
  const fillfactor = flag(args, "fillfactor", 0);
  const sql = postgres(Deno.env.get("DATABASE_URL")!, { max: 2, onnotice: () => {} });
  await migrate(sql);
  await sql`truncate actor_states`;
  if (fillfactor > 0) await sql.unsafe(`alter table actor_states set (fillfactor = ${Math.trunc(fillfactor)})`);
  const [{ reloptions }] = await sql`select reloptions from pg_class where relname = 'actor_states'`;
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const rows = Array.from({ length: states }, (_, i) => ({
        key: `user-${partition}-${i}`,
        state: userState(i, round),
        timers: {},
        lastActiveAt: 1_700_000_000_000 + round * 1_000,
      }));
      const started = performance.now();
      await sql.begin((tx) => saveStates(tx, "user", partition, encodeStates("user", rows)));
      if (round >= WARM_UP_ROUNDS) times.push(performance.now() - started);
    }
  }
  const [{ size }] = await sql`select pg_total_relation_size('actor_states') as size`;
  await sql.end();
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`\nmachine: ${await machine()}`);
  console.log(`command: deno task bench store --states ${states} --rounds ${rounds} --fillfactor ${fillfactor}`);
  console.log(
    `actor_states ${JSON.stringify(reloptions ?? [])}: ${states} states of ${
      JSON.stringify(userState(1, 1)).length
    } B per transaction, p50 ${times[Math.floor(times.length / 2)].toFixed(0)} ms, mean ${
      mean.toFixed(0)
    } ms (${times.length} transactions after ${WARM_UP_ROUNDS} warm-up rounds); table and indexes ${
      (Number(size) / 1e6).toFixed(0)
    } MB after ${rounds} rounds`,
  );
}
