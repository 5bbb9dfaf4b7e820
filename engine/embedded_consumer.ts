/**
 * The embedded log's consumer: a group with a single member that owns every partition of its
 * topics. It hands all partitions to the listener once, seeks each to the offset the listener
 * returns, then fetches every partition that is ready (not paused, no batch in flight) in one
 * query and delivers the batches, one partition's batches strictly one after the other. A seek
 * during a batch wins over the batch's natural advance. It waits for an append in this process
 * (woken at once) or, at most, a poll interval.
 */
import {
  earliestOffset,
  endOffset,
  endOffsets,
  type FetchedRow,
  fetchRecords,
  loadGroupOffsets,
  saveGroupOffset,
} from "../sql/embedded_log.ts";
import type { Sql } from "./database.ts";
import { ensureError } from "./errors.ts";
import type { LogConsumer, LogRecord, PartitionListener, TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";

/** Consumer settings. */
export interface EmbeddedConsumerOptions {
  readonly groupId: string;
  readonly logger: Logger;
  /** Most records per batch. */
  readonly maxBatch?: number;
  /** Most bytes of keys and values per batch (a single larger record comes alone), as Kafka's per-partition fetch. */
  readonly maxBatchBytes?: number;
  /** Longest wait between fetches when nothing wakes the consumer (appends from other processes, retries). */
  readonly pollIntervalMs?: number;
  /** Delay before a failed fetch or batch is retried; doubles up to the maximum. */
  readonly retryBackoffMs?: { readonly initial: number; readonly max: number };
}

/** What the consumer needs from its log. */
export interface AppendSource {
  partitionCount(topic: string): Promise<number>;
  onAppend(wake: () => void): () => void;
  /** Admits the group's only member, throwing if it has one already; returns the function that lets it leave. */
  join(groupId: string): () => void;
  /** Keeps `write` until it settles, so that closing the log waits for it. */
  track(write: Promise<unknown>): void;
}

/** 1 MiB a batch, kafkajs's maxBytesPerPartition: 500 records of big events made one fetch of gigabytes. */
const DEFAULTS = {
  maxBatch: 500,
  maxBatchBytes: 1_048_576,
  pollIntervalMs: 250,
  retryBackoffMs: { initial: 100, max: 5_000 },
} as const;

interface PartitionState {
  readonly tp: TopicPartition;
  position: number;
  /** Incremented by every seek: a batch's natural advance is dropped if a seek happened meanwhile. */
  seeks: number;
  paused: boolean;
  inFlight: boolean;
  failures: number;
  retryAt: number;
}

/** A single-member consumer group over the embedded log. */
export class EmbeddedConsumer implements LogConsumer {
  readonly #sql: Sql;
  readonly #source: AppendSource;
  readonly #options: EmbeddedConsumerOptions;
  readonly #log: Logger;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #batches = new Set<Promise<void>>();
  #listener: PartitionListener | null = null;
  #running = false;
  #loop: Promise<void> | null = null;
  #signal = Promise.withResolvers<void>();
  #unsubscribe: () => void = () => {};
  #leave: () => void = () => {};
  #fetchFailures = 0;

  constructor(sql: Sql, source: AppendSource, options: EmbeddedConsumerOptions) {
    this.#sql = sql;
    this.#source = source;
    this.#options = options;
    this.#log = options.logger.child({ component: "embedded-consumer", group: options.groupId });
  }

  async start(topics: readonly string[], listener: PartitionListener): Promise<void> {
    if (this.#running) throw new Error("Cannot start the consumer: it is already running");
    // Before anything is awaited, so that two starts at once cannot both be admitted.
    const leave = this.#source.join(this.#options.groupId);
    const owned: TopicPartition[] = [];
    let offsets: Map<string, number>;
    let committed: Map<string, number>;
    try {
      for (const topic of topics) {
        const count = await this.#source.partitionCount(topic);
        for (let partition = 0; partition < count; partition++) owned.push({ topic, partition });
      }
      this.#listener = listener;
      committed = await loadGroupOffsets(this.#sql, this.#options.groupId);
      offsets = await listener.assigned(owned);
    } catch (error) {
      leave();
      throw error;
    }
    this.#leave = leave;
    for (const tp of owned) {
      const key = tpKey(tp);
      const position = offsets.get(key) ?? committed.get(key) ?? 0;
      this.#partitions.set(key, { tp, position, seeks: 0, paused: false, inFlight: false, failures: 0, retryAt: 0 });
    }
    this.#log.info("partitions assigned", { partitions: owned.length, topics });
    this.#unsubscribe = this.#source.onAppend(() => this.#wake());
    this.#running = true;
    this.#loop = this.#run();
  }

  seek(tp: TopicPartition, offset: number): void {
    const state = this.#partitions.get(tpKey(tp));
    if (!state) return;
    state.position = offset;
    state.seeks++;
    this.#wake();
  }

  /**
   * Records the group's offset. The runtime commits after each checkpoint without waiting, also
   * after `stop` (final checkpoints); the log's close waits for these writes, so the database is
   * never closed under them and the offsets retention relies on are not lost.
   */
  commit(tp: TopicPartition, nextOffset: number): Promise<void> {
    const write = saveGroupOffset(this.#sql, this.#options.groupId, tp.topic, tp.partition, nextOffset);
    this.#source.track(write);
    return write;
  }

  earliestOffset(tp: TopicPartition): Promise<number> {
    return earliestOffset(this.#sql, tp.topic, tp.partition);
  }

  endOffset(tp: TopicPartition): Promise<number> {
    return endOffset(this.#sql, tp.topic, tp.partition);
  }

  endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    return endOffsets(this.#sql, topic);
  }

  pause(tps: readonly TopicPartition[]): void {
    for (const tp of tps) {
      const state = this.#partitions.get(tpKey(tp));
      if (state) state.paused = true;
    }
  }

  resume(tps: readonly TopicPartition[]): void {
    for (const tp of tps) {
      const state = this.#partitions.get(tpKey(tp));
      if (state) state.paused = false;
    }
    this.#wake();
  }

  /** Stops fetching and waits for the batches in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#unsubscribe();
    this.#wake();
    await this.#loop;
    await Promise.allSettled([...this.#batches]);
    this.#partitions.clear();
    this.#leave();
  }

  #wake(): void {
    this.#signal.resolve();
  }

  async #run(): Promise<void> {
    const interval = this.#options.pollIntervalMs ?? DEFAULTS.pollIntervalMs;
    while (this.#running) {
      // A wake-up from here on (an append, a finished batch, a seek) ends the wait below at once.
      this.#signal = Promise.withResolvers<void>();
      let wait = interval;
      try {
        wait = Math.min(wait, await this.#fetchAndDeliver());
        this.#fetchFailures = 0;
      } catch (error) {
        wait = this.#backoff(this.#fetchFailures++);
        this.#log.error("fetching from the embedded log failed; retrying", { error: ensureError(error), delay: wait });
      }
      if (!this.#running) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#signal.promise, new Promise((resolve) => timer = setTimeout(resolve, wait))]);
      clearTimeout(timer);
    }
  }

  /** One round: fetches every ready partition and starts its batch; returns how soon a retry is due. */
  async #fetchAndDeliver(): Promise<number> {
    const now = Date.now();
    const ready = [...this.#partitions.values()].filter((p) => !p.paused && !p.inFlight && p.retryAt <= now);
    const retryIn = Math.min(
      Number.MAX_SAFE_INTEGER,
      ...[...this.#partitions.values()].filter((p) => p.retryAt > now).map((p) => p.retryAt - now),
    );
    if (ready.length === 0) return retryIn;
    const asked = new Map(ready.map((p) => [tpKey(p.tp), { position: p.position, seeks: p.seeks }]));
    const rows = await fetchRecords(
      this.#sql,
      ready.map((p) => ({ ...p.tp, position: p.position })),
      this.#options.maxBatch ?? DEFAULTS.maxBatch,
      this.#options.maxBatchBytes ?? DEFAULTS.maxBatchBytes,
    );
    for (const [key, batch] of groupByPartition(rows)) {
      const state = this.#partitions.get(key);
      const request = asked.get(key);
      // Dropped if the partition was sought, paused or stopped while the fetch ran.
      if (!this.#running || !state || !request || state.paused || state.seeks !== request.seeks) continue;
      if (state.position !== request.position) continue;
      state.inFlight = true;
      const delivery = this.#deliver(state, batch.records, batch.highWatermark);
      this.#batches.add(delivery);
      delivery.finally(() => this.#batches.delete(delivery));
    }
    return retryIn;
  }

  async #deliver(state: PartitionState, records: LogRecord[], highWatermark: number): Promise<void> {
    const seeks = state.seeks;
    try {
      await this.#listener!.batch({ ...state.tp, records, highWatermark }, () => Promise.resolve());
      // A seek during the batch wins over the natural advance.
      if (state.seeks === seeks) state.position = records[records.length - 1].offset + 1;
      state.failures = 0;
    } catch (error) {
      const delay = this.#backoff(state.failures++);
      state.retryAt = Date.now() + delay;
      this.#log.error("batch handler failed; redelivering", {
        topic: state.tp.topic,
        partition: state.tp.partition,
        offset: records[0].offset,
        error: ensureError(error),
        delay,
      });
    } finally {
      state.inFlight = false;
      this.#wake();
    }
  }

  #backoff(failures: number): number {
    const { initial, max } = this.#options.retryBackoffMs ?? DEFAULTS.retryBackoffMs;
    return Math.min(initial * 2 ** failures, max);
  }
}

/** Splits fetched rows (ordered by partition and offset) into per-partition batches. */
function groupByPartition(rows: readonly FetchedRow[]): Map<string, { records: LogRecord[]; highWatermark: number }> {
  const out = new Map<string, { records: LogRecord[]; highWatermark: number }>();
  for (const row of rows) {
    const key = tpKey(row);
    let batch = out.get(key);
    if (!batch) {
      batch = { records: [], highWatermark: Number(row.high_watermark) };
      out.set(key, batch);
    }
    const value = row.value;
    batch.records.push({
      topic: row.topic,
      partition: row.partition,
      offset: Number(row.record_offset),
      key: row.key,
      value: value ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : null,
      headers: row.headers ?? {},
      timestamp: Number(row.appended_at),
    });
  }
  return out;
}
