/**
 * An in-memory partitioned log with Kafka's semantics (keyed partitioning, offsets, one consumer
 * owning every partition), for unit tests of the runtime. Not durable; never used in production.
 */
import type {
  LogAdmin,
  LogConsumer,
  LogProducer,
  LogRecord,
  OutgoingRecord,
  PartitionListener,
  TopicPartition,
  TopicSpec,
} from "./log.ts";
import { tpKey } from "./log.ts";
import { partitionForKey } from "./partitioner.ts";

const encoder = new TextEncoder();

/** Most records handed to the listener in one batch. */
const DEFAULT_MAX_BATCH = 500;

/** The log itself: topics of partitions of records. */
export class MemoryLog implements LogAdmin {
  readonly #topics = new Map<string, LogRecord[][]>();
  /** Per partition, the first offset retention kept (deleteBefore). */
  readonly #deletedBefore = new Map<string, number>();
  #waiters: (() => void)[] = [];
  /** When set, appends fail with this error (to simulate an unavailable log). */
  failAppends: Error | null = null;

  constructor(private readonly clock: () => number = Date.now) {}

  /** The log's clock (epoch ms): append times, and when its consumers last read it. */
  now(): number {
    return this.clock();
  }

  ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    for (const { topic, partitions } of topics) {
      if (!this.#topics.has(topic)) this.#topics.set(topic, Array.from({ length: partitions }, () => []));
    }
    return Promise.resolve();
  }

  missingTopics(topics: readonly string[]): Promise<string[]> {
    return Promise.resolve(topics.filter((topic) => !this.#topics.has(topic)));
  }

  partitionCount(topic: string): Promise<number> {
    return Promise.resolve(this.#partitions(topic).length);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  #partitions(topic: string): LogRecord[][] {
    const partitions = this.#topics.get(topic);
    if (!partitions) throw new Error(`unknown topic ${topic}`);
    return partitions;
  }

  /** Appends synchronously; returns the stored records. */
  appendNow(records: readonly OutgoingRecord[]): LogRecord[] {
    if (this.failAppends) throw this.failAppends;
    const stored = records.map((r) => {
      const partitions = this.#partitions(r.topic);
      const partition = r.partition ?? partitionForKey(r.key, partitions.length);
      const list = partitions[partition];
      const record: LogRecord = {
        topic: r.topic,
        partition,
        offset: list.length,
        key: r.key,
        value: typeof r.value === "string" ? encoder.encode(r.value) : r.value,
        headers: { ...r.headers },
        timestamp: this.clock(),
      };
      list.push(record);
      return record;
    });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
    return stored;
  }

  /** Records of a partition from `offset` on (from the earliest one kept, like Kafka's offset reset). */
  read(tp: TopicPartition, offset: number, max = Number.MAX_SAFE_INTEGER): LogRecord[] {
    const from = Math.max(offset, this.earliest(tp));
    return this.#partitions(tp.topic)[tp.partition].slice(from, from + max);
  }

  /** Simulates retention: records of the partition before `offset` are gone; offsets do not change. */
  deleteBefore(tp: TopicPartition, offset: number): void {
    const end = this.endOffset(tp);
    this.#deletedBefore.set(tpKey(tp), Math.max(this.earliest(tp), Math.min(offset, end)));
  }

  /** The first offset still kept in the partition. */
  earliest(tp: TopicPartition): number {
    return this.#deletedBefore.get(tpKey(tp)) ?? 0;
  }

  /** The offset the next appended record of the partition gets. */
  endOffset(tp: TopicPartition): number {
    return this.#partitions(tp.topic)[tp.partition].length;
  }

  /** Every record of a topic, partition by partition (retention ignored). */
  all(topic: string): LogRecord[] {
    return this.#partitions(topic).flat();
  }

  /** Resolves on the next append, or after `ms`. */
  waitForAppend(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  producer(): LogProducer {
    return {
      append: (records) => {
        try {
          this.appendNow(records);
          return Promise.resolve();
        } catch (error) {
          return Promise.reject(error);
        }
      },
      close: () => Promise.resolve(),
    };
  }

  consumer(options: { maxBatch?: number; idleWaitMs?: number } = {}): MemoryConsumer {
    return new MemoryConsumer(this, options.maxBatch ?? DEFAULT_MAX_BATCH, options.idleWaitMs ?? 20);
  }

  topicPartitions(topics: readonly string[]): TopicPartition[] {
    return topics.flatMap((topic) => this.#partitions(topic).map((_, partition) => ({ topic, partition })));
  }
}

/** A consumer that owns every partition of its topics, like a group with one member. */
export class MemoryConsumer implements LogConsumer {
  readonly #positions = new Map<string, number>();
  readonly #paused = new Set<string>();
  readonly #committed = new Map<string, number>();
  /** Seek count per partition: a batch's natural advance is dropped if a seek happened meanwhile. */
  readonly #seeks = new Map<string, number>();
  #running = false;
  #loop: Promise<void> | null = null;
  #listener: PartitionListener | null = null;
  #owned: TopicPartition[] = [];

  constructor(
    private readonly log: MemoryLog,
    private readonly maxBatch: number,
    private readonly idleWaitMs: number,
  ) {}

  async start(topics: readonly string[], listener: PartitionListener): Promise<void> {
    this.#listener = listener;
    this.#owned = this.log.topicPartitions(topics);
    const offsets = await listener.assigned(this.#owned);
    for (const tp of this.#owned) this.#positions.set(tpKey(tp), offsets.get(tpKey(tp)) ?? 0);
    this.#running = true;
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let delivered = false;
      for (const tp of this.#owned) {
        if (!this.#running) break;
        const key = tpKey(tp);
        if (this.#paused.has(key) || this.#unreadableSince !== undefined) continue;
        const position = this.#positions.get(key) ?? 0;
        const records = this.log.read(tp, position, this.maxBatch);
        if (records.length === 0) continue;
        delivered = true;
        const highWatermark = this.log.endOffset(tp);
        const seeks = this.#seeks.get(key) ?? 0;
        await this.#listener!.batch({ ...tp, records, highWatermark }, () => Promise.resolve());
        // A seek during the batch wins over the natural advance.
        if ((this.#seeks.get(key) ?? 0) === seeks) this.#positions.set(key, records[records.length - 1].offset + 1);
      }
      if (!delivered) await this.log.waitForAppend(this.idleWaitMs);
    }
  }

  seek(tp: TopicPartition, offset: number): void {
    this.#positions.set(tpKey(tp), offset);
    this.#seeks.set(tpKey(tp), (this.#seeks.get(tpKey(tp)) ?? 0) + 1);
  }

  commit(tp: TopicPartition, nextOffset: number): Promise<void> {
    this.#committed.set(tpKey(tp), nextOffset);
    return Promise.resolve();
  }

  earliestOffset(tp: TopicPartition): Promise<number> {
    return Promise.resolve(this.log.earliest(tp));
  }

  endOffset(tp: TopicPartition): Promise<number> {
    return Promise.resolve(this.log.endOffset(tp));
  }

  endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    return Promise.resolve(
      new Map(this.log.topicPartitions([topic]).map((tp) => [tp.partition, this.log.endOffset(tp)] as const)),
    );
  }

  #unreadableSince: number | undefined;

  /**
   * Whether the consumer can read the log: tests of a broker it cannot reach set it false. Reads
   * succeed continuously while true, so the last one is now; once false, it is when that happened.
   */
  set readable(value: boolean) {
    this.#unreadableSince = value ? undefined : (this.#unreadableSince ?? this.log.now());
  }

  lastReadAt(): number {
    return this.#unreadableSince ?? this.log.now();
  }

  /** Whether the "group" confirms the assignment: tests of a member the group has not confirmed set it false. */
  confirmsAssignment = true;

  assignmentConfirmedSince(_since: number): boolean {
    return this.confirmsAssignment;
  }

  /** The last committed offset of a partition (lag reporting). */
  committed(tp: TopicPartition): number | undefined {
    return this.#committed.get(tpKey(tp));
  }

  pause(tps: readonly TopicPartition[]): void {
    for (const tp of tps) this.#paused.add(tpKey(tp));
  }

  resume(tps: readonly TopicPartition[]): void {
    for (const tp of tps) this.#paused.delete(tpKey(tp));
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}
