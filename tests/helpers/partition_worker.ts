/** A lone PartitionWorker fed batches by hand, for tests of how it moves through a partition's offsets and clock. */
import type { ActorLogic, AnyActorLogic } from "../../engine/actor.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { topicNames } from "../../engine/config.ts";
import { bundleRecords } from "../../engine/fact_bundle.ts";
import type { LogConsumer, LogRecord, RecordBatch, TopicPartition } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { PartitionWorker, type WorkerDeps } from "../../engine/partition_worker.ts";
import { emitTestAlert, recorderLogic } from "./runtime.ts";

export const T0 = Date.UTC(2026, 0, 1);
export const topics = topicNames({ TOPIC_PREFIX: "" });
export const tp: TopicPartition = { topic: topics.events, partition: 0 };
export const noHeartbeat = (): Promise<void> => Promise.resolve();

/** A consumer that delivers nothing by itself (the test hands the batches) and records the seeks asked of it. */
export class InertConsumer implements LogConsumer {
  readonly seeks: number[] = [];
  /** The log's start offset (records before it deleted). */
  earliest = 0;
  /** The log's end offset. */
  end = 0;
  /** The group's committed offset (undefined: none, the log is new to the group). */
  committed: number | undefined = undefined;
  /** Wall time of the consumer's latest read of the log (Infinity: reading now). */
  lastRead = Infinity;
  start(): Promise<void> {
    return Promise.resolve();
  }
  seek(_tp: TopicPartition, offset: number): void {
    this.seeks.push(offset);
  }
  commit(): Promise<void> {
    return Promise.resolve();
  }
  earliestOffset(): Promise<number> {
    return Promise.resolve(this.earliest);
  }
  endOffset(): Promise<number> {
    return Promise.resolve(this.end);
  }
  committedOffset(): Promise<number | undefined> {
    return Promise.resolve(this.committed);
  }
  endOffsets(): Promise<ReadonlyMap<number, number>> {
    return Promise.resolve(new Map());
  }
  lastReadAt(): number {
    return this.lastRead;
  }
  pause(): void {}
  resume(): void {}
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/** Record `offset` of partition 0 for key `key`, carrying `value` (by default `n = offset` at T0). */
export function record(offset: number, value: unknown = { n: offset, at: T0 }, key = "u"): LogRecord {
  return { ...tp, offset, key, value: new TextEncoder().encode(JSON.stringify(value)), headers: {}, timestamp: T0 };
}

/** Record 0 of partition 0: one bundle of `values` for key `key` (engine/fact_bundle.ts), as the internal topics carry facts. */
export function bundledRecord(values: readonly unknown[], key: string): LogRecord {
  const facts = values.map((value) => ({ topic: tp.topic, key, value: JSON.stringify(value) }));
  const [bundle] = bundleRecords(facts, new Map([[tp.topic, 1]]));
  return {
    ...tp,
    offset: 0,
    key: bundle.key,
    value: bundle.value as Uint8Array,
    headers: bundle.headers!,
    timestamp: T0,
  };
}

/** A batch of the records `[first, last]` that covers `[from, end)`. */
export function batch(first: number, last: number, from: number, end: number): RecordBatch {
  const records = Array.from({ length: last - first + 1 }, (_, i) => record(first + i));
  return { ...tp, records, highWatermark: end, from, end };
}

/** A worker on `consumer` and a fresh store, its wall clock at `wall()`; it publishes to `log` (every topic one partition). */
export async function claim(
  consumer: LogConsumer,
  wall: () => number,
  store = new MemoryCheckpointStore(wall),
  options: Partial<WorkerDeps> & { logic?: AnyActorLogic } = {},
  log = new MemoryLog(wall),
): Promise<PartitionWorker> {
  await log.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 1 })));
  return PartitionWorker.claim(tp, {
    store,
    producer: log.producer(),
    consumer,
    logic: recorderLogic(),
    topics,
    groupId: "group",
    owner: "me",
    logger: silentLogger,
    checkpointMaxMessages: 1_000,
    idleClockMs: 1_000,
    retryBackoffMs: { initial: 1, max: 1 },
    wallClock: wall,
    ...options,
  });
}

/** State of the alarm actor: the deadlines of the alarms that fired, as `ctx.now()` saw them. */
export interface Alarms {
  readonly key: string;
  readonly fired: readonly number[];
}

/**
 * An actor that arms its timer `alarm` for the deadline a message names (`{at, alarm}`); each firing is recorded in its
 * state and raises an alert.
 */
export function alarmLogic(
  onHandle: (message: { at: number; alarm?: number }) => void = () => {},
): ActorLogic<Alarms, { at: number; alarm?: number }> {
  return {
    kind: "alarm",
    initial: (key) => ({ key, fired: [] }),
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at,
    handle: (state, m, ctx) => {
      onHandle(m);
      if (m.alarm !== undefined) ctx.setTimer("alarm", m.alarm);
      return state;
    },
    onTimer: (state, _name, ctx) => {
      emitTestAlert(ctx, "alarm", state.key);
      return { ...state, fired: [...state.fired, ctx.now()] };
    },
    persist: (s) => s,
    restore: (d) => d as Alarms,
  };
}
