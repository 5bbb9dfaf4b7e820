/** Reads topics from their beginning as records arrive, through any LogConsumer (Kafka or embedded). */
import type { LogConsumer, LogRecord, PartitionListener, TopicPartition } from "../../engine/log.ts";
import { tpKey } from "../../engine/log.ts";
import { parseJson } from "../../engine/json_parse.ts";

/** Records received so far, in arrival order. */
export interface Collector {
  readonly records: readonly LogRecord[];
  /** The values received on `topic`, parsed as JSON. */
  json<T = Record<string, unknown>>(topic: string): T[];
  stop(): Promise<void>;
}

/** Starts `consumer` (in a group of its own) on `topics` at offset 0 and collects everything it delivers. */
export async function collect(consumer: LogConsumer, topics: readonly string[]): Promise<Collector> {
  const records: LogRecord[] = [];
  const decoder = new TextDecoder();
  const listener: PartitionListener = {
    assigned: (tps: readonly TopicPartition[]) => Promise.resolve(new Map(tps.map((tp) => [tpKey(tp), 0]))),
    revoked: () => Promise.resolve(),
    batch: (batch) => {
      records.push(...batch.records);
      return Promise.resolve();
    },
  };
  await consumer.start(topics, listener);
  return {
    records,
    json: <T>(topic: string) =>
      records.filter((r) => r.topic === topic).map((r) => parseJson(decoder.decode(r.value!)) as T),
    stop: () => consumer.stop(),
  };
}
