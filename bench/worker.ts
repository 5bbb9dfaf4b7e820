// deno-lint-ignore-file no-console
/**
 * `deno task bench worker [--base DIR] [--events N] [--users N] [--rounds N]`: bytes allocated and CPU per event of a
 * lone PartitionWorker handling the engine benchmark's input (user actors, product views) in batches of 500, against
 * an in-memory log and store; with `--base DIR` (another checkout of this repository), that one's against this one's,
 * the sides alternating round by round in one process. It needs no services (`deno run -A --v8-flags=--expose-gc
 * bench/main.ts worker` runs it without them). Bytes allocated (V8's `total_allocated_bytes`, counted around each
 * `handleBatch`) are what the garbage collector will have to go through, and do not move with other processes' load,
 * as CPU time on a shared machine does; checkpoints (into the memory store, which copies every state) are not counted.
 */
import process from "node:process";
import v8 from "node:v8";
import { benchEvent, DEFAULT_PRODUCTS, flag, machine } from "./workload.ts";

const BATCH = 500;
/** Checkpoint every this many batches, as the engine's interval would over a backlog. */
const CHECKPOINT_BATCHES = 20;

/** V8's count of bytes allocated so far (Deno's typings of `node:v8` do not list it). */
const allocated = () => (v8.getHeapStatistics() as unknown as { total_allocated_bytes: number }).total_allocated_bytes;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

/** One side: a run over the input returns its bytes and CPU µs per event. */
async function side(root: string, events: number, users: number): Promise<() => Promise<[number, number]>> {
  const helpers = await import(new URL("tests/helpers/partition_worker.ts", root).href);
  const { MemoryCheckpointStore } = await import(new URL("engine/memory_checkpoint_store.ts", root).href);
  const { createDomainLogics } = await import(new URL("actors/domain.ts", root).href);
  const logic = createDomainLogics().user;
  const encoder = new TextEncoder();
  const records = Array.from({ length: events }, (_, n) => {
    const event = benchEvent(n, users, DEFAULT_PRODUCTS);
    const value = encoder.encode(JSON.stringify(event));
    return { ...helpers.tp, offset: n, key: event.userId, value, headers: {}, timestamp: Date.parse(event.receivedAt) };
  });
  return async () => {
    const consumer = new helpers.InertConsumer();
    const store = new MemoryCheckpointStore(Date.now);
    const worker = await helpers.claim(consumer, Date.now, store, { logic, checkpointMaxMessages: Infinity });
    let bytes = 0;
    let cpu = 0;
    for (let from = 0, n = 0; from < events; from += BATCH, n++) {
      const batch = records.slice(from, from + BATCH);
      consumer.end = from + batch.length;
      const before = allocated();
      const started = process.cpuUsage();
      await worker.handleBatch({ ...helpers.tp, records: batch, highWatermark: consumer.end }, helpers.noHeartbeat);
      const used = process.cpuUsage(started);
      bytes += allocated() - before;
      cpu += used.user + used.system;
      if (n % CHECKPOINT_BATCHES === CHECKPOINT_BATCHES - 1) await worker.checkpoint();
    }
    await worker.close();
    return [bytes / events, cpu / events];
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const events = flag(args, "events", 50_000);
  const users = flag(args, "users", 10_000);
  const rounds = flag(args, "rounds", 6);
  const baseAt = args.indexOf("--base");
  const roots = [new URL("../", import.meta.url).href];
  if (baseAt >= 0) roots.unshift(new URL(`${args[baseAt + 1].replace(/\/?$/, "/")}`, `file://${Deno.cwd()}/`).href);
  const sides = [];
  for (const root of roots) sides.push(await side(root, events, users));
  const results = roots.map(() => ({ bytes: [] as number[], cpu: [] as number[] }));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < sides.length; i++) {
      const s = round % 2 === 0 ? i : sides.length - 1 - i;
      gc();
      const [bytes, cpu] = await sides[s]();
      results[s].bytes.push(bytes);
      results[s].cpu.push(cpu);
    }
  }
  console.log(`machine: ${await machine()}`);
  console.log(`lone PartitionWorker, user actors: ${events} product views of ${users} users, ${rounds} rounds`);
  roots.forEach((root, i) => {
    const { bytes, cpu } = results[i];
    console.log(
      `${root}: ${median(bytes).toFixed(0)} bytes allocated and ${median(cpu).toFixed(1)} µs CPU per event (medians; ` +
        `CPU by round ${cpu.map((c) => c.toFixed(1)).join(", ")})`,
    );
  });
}
