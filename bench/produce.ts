// deno-lint-ignore-file no-console
/**
 * `deno task bench produce [--appends N]`: what the engine's Kafka producer (engine/kafka_producer.ts: kafkajs, idempotent,
 * acks=all, one request in flight, appends coalesced) delivers alone, for the shapes the engine appends: a checkpoint's
 * fact bundles (a few records of tens of KB) and the ingestion edge's events (many records of a few hundred bytes),
 * one append at a time and eight at once. The ceiling the engine's outputs are published under; inside the engine the
 * same requests share the thread with everything else (engine_checkpoint_phase_seconds{phase="publish"}).
 */
import { KafkaAdmin } from "../engine/kafka_admin.ts";
import { createKafka } from "../engine/kafka_client.ts";
import { KafkaProducer } from "../engine/kafka_producer.ts";
import type { OutgoingRecord } from "../engine/log.ts";
import { silentLogger } from "../engine/logger.ts";
import { flag, machine } from "./workload.ts";

const PARTITIONS = 12;
const SHAPES = [
  { name: "fact bundles", records: 6, bytes: 73_000 },
  { name: "events", records: 1_700, bytes: 250 },
] as const;
const CONCURRENT_APPENDS = 8;

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const appends = flag(args, "appends", 200);
  const brokers = Deno.env.get("KAFKA_BROKERS")!.split(",");
  const options = { brokers, clientId: "bench-produce", logger: silentLogger, publishTimeoutMs: 30_000 };
  const kafka = createKafka(options);
  const admin = new KafkaAdmin(kafka);
  const topic = `bench-produce-${Date.now()}`;
  await admin.ensureTopics([{ topic, partitions: PARTITIONS }], 1);
  const producer = new KafkaProducer(kafka, options);
  const lines: string[] = [];
  for (const shape of SHAPES) {
    const value = new Uint8Array(shape.bytes).fill(0x61);
    const append: OutgoingRecord[] = Array.from({ length: shape.records }, (_, i) => ({
      topic,
      key: `k${i}`,
      value,
      partition: i % PARTITIONS,
    }));
    const megabytes = (shape.records * shape.bytes) / 1e6;
    await producer.append(append); // connects and warms up
    const times: number[] = [];
    let started = performance.now();
    for (let i = 0; i < appends; i++) {
      const t = performance.now();
      await producer.append(append);
      times.push(performance.now() - t);
    }
    const sequentialMs = performance.now() - started;
    times.sort((a, b) => a - b);
    started = performance.now();
    for (let i = 0; i < appends; i += CONCURRENT_APPENDS) {
      await Promise.all(Array.from({ length: CONCURRENT_APPENDS }, () => producer.append(append)));
    }
    const concurrentMs = performance.now() - started;
    const rate = (ms: number) => (megabytes * appends / (ms / 1000)).toFixed(1);
    lines.push(
      `${shape.name} (${shape.records} × ${shape.bytes.toLocaleString("en")} B per append): one at a time p50 ${
        quantile(times, 0.5).toFixed(1)
      } ms, p99 ${quantile(times, 0.99).toFixed(1)} ms, ${rate(sequentialMs)} MB/s; ${CONCURRENT_APPENDS} at once ${
        rate(concurrentMs)
      } MB/s`,
    );
  }
  await producer.close();
  await admin.close();
  console.log(`\nmachine: ${await machine()}`);
  console.log(`command: deno task bench produce --appends ${appends}`);
  for (const line of lines) console.log(line);
}
