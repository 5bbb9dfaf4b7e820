/**
 * The partitioned-log interface the runtime is written against. Kafka implements it
 * (`kafka_client.ts` and the `kafka_*.ts` beside it), and so do the in-memory log for unit tests and the embedded durable log.
 * Nothing outside these adapters knows which client library is underneath.
 */

/** A partition of a topic. */
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** A record as read from the log. */
export interface LogRecord extends TopicPartition {
  readonly offset: number;
  readonly key: string | null;
  readonly value: Uint8Array | null;
  readonly headers: Readonly<Record<string, string>>;
  /** Append time in epoch milliseconds. */
  readonly timestamp: number;
}

/** A record to append; the log picks the partition from the key unless one is given. */
export interface OutgoingRecord {
  readonly topic: string;
  readonly key: string;
  /** Bytes are not copied: they must not change once appended. */
  readonly value: Uint8Array | string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly partition?: number;
}

/** Per-call settings of an append. */
export interface AppendOptions {
  /** Deadline for the acknowledgement; defaults to the log's configured publish timeout. */
  readonly timeoutMs?: number;
}

/** Appends records durably. */
export interface LogProducer {
  /** Resolves only after the log acknowledged every record (Kafka: acks=all); rejects with LogUnavailableError otherwise. */
  append(records: readonly OutgoingRecord[], options?: AppendOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * A run of consecutive records of one partition, in offset order. On Kafka the offsets may have holes: a read_committed
 * consumer is not handed transaction markers nor the records of aborted transactions, so a batch may even be empty
 * (only such records): `from` and `end` then say which offsets it covered, so that the reader moves past them.
 */
export interface RecordBatch extends TopicPartition {
  readonly records: readonly LogRecord[];
  /** The partition's end offset when the batch was fetched, for lag. */
  readonly highWatermark: number;
  /** The first offset the batch covers, records left out included; absent: its first record's. */
  readonly from?: number;
  /** The offset after the last one the batch covers, records left out included; absent: after its last record's. */
  readonly end?: number;
}

/** What the consumer calls back into; implemented by the partition runtime. */
export interface PartitionListener {
  /** Partitions now owned by this instance; the consumer seeks each to the returned next offset. */
  assigned(partitions: readonly TopicPartition[]): Promise<Map<string, number>>;
  /** Partitions no longer owned; called before they are consumed elsewhere when the log allows it. */
  revoked(partitions: readonly TopicPartition[]): Promise<void>;
  /**
   * Whether this instance gave the partition up since it was assigned (its worker was fenced off by
   * a newer owner), so that an assignment that still lists it claims it again. Absent: never.
   */
  gaveUp?(tp: TopicPartition): boolean;
  /** Handles one batch; the partition's next batch is delivered only after this resolves (it may be fetched before). */
  batch(batch: RecordBatch, heartbeat: () => Promise<void>): Promise<void>;
}

/** Consumes topics as a member of a group. */
export interface LogConsumer {
  /** Joins the group and starts delivering batches to `listener`. */
  start(topics: readonly string[], listener: PartitionListener): Promise<void>;
  /** Moves the read position of an owned partition; the current batch is abandoned. */
  seek(tp: TopicPartition, offset: number): void;
  /** Records progress in the group's committed offsets (for lag monitoring; checkpoints are authoritative). */
  commit(tp: TopicPartition, nextOffset: number): Promise<void>;
  /** The first offset still in the partition: retention may have deleted the records before it. */
  earliestOffset(tp: TopicPartition): Promise<number>;
  /**
   * The partition's next offset (its end): what a reader that means to reach the end must read up to. On Kafka the high
   * watermark, past the records of a transaction still open: the reader gets them, or past them, once it ends.
   */
  endOffset(tp: TopicPartition): Promise<number>;
  /**
   * The group's committed offset of a partition, undefined if it has none: a log the group never committed on is new
   * to it (Kafka drops a deleted topic's offsets). Logs that cannot lose records once handled need not say.
   */
  committedOffset?(tp: TopicPartition): Promise<number | undefined>;
  /** Every partition's end offset of `topic`, in one read of the log; a partition never appended to may be absent (0). */
  endOffsets(topic: string): Promise<ReadonlyMap<number, number>>;
  /**
   * Whether the group has confirmed, since `since` (performance.now() ms), that this member's
   * assignment as last handed to the listener is current. Absent: a log with one member, where it
   * always is.
   */
  assignmentConfirmedSince?(since: number): boolean;
  /**
   * Wall time (epoch ms) of the consumer's latest successful read of the log, the latest moment it
   * could have seen a record appended: an idle partition's clock never follows the wall past it, so a
   * log that cannot be read (a broker down or unreachable) is not taken for one without records.
   * Absent: a log that is always readable.
   */
  lastReadAt?(): number;
  pause(tps: readonly TopicPartition[]): void;
  resume(tps: readonly TopicPartition[]): void;
  /**
   * Stops delivering batches and waits for those being handled, still a member of the group with its
   * partitions assigned, so that final checkpoints land before another member may claim them. Absent: a
   * log with one member, where no one else would.
   */
  quiesce?(): Promise<void>;
  /**
   * The error that stopped the consumer for good (Kafka: kafkajs does not restart it after an error it
   * does not retry), if any: the instance then owns nothing and consumes nothing. Absent: never.
   */
  failure?(): Error | undefined;
  /**
   * Settles with `failure()` once the consumer stopped for good, so that the engine stops instead of holding its
   * partitions while their new owners handle them. Absent: never.
   */
  failed?(): Promise<Error>;
  /** Stops delivering (as `quiesce`), then leaves the group. */
  stop(): Promise<void>;
}

/** A topic and the number of partitions it is created with. */
export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
}

/** Creates topics that are missing. */
export interface LogAdmin {
  ensureTopics(topics: readonly TopicSpec[], replicationFactor: number): Promise<void>;
  /** Number of partitions of a topic, for computing a key's partition. */
  partitionCount(topic: string): Promise<number>;
  /** Those of `topics` the log does not have: a tool beside the engine checks, rather than creates, what it reads. */
  missingTopics(topics: readonly string[]): Promise<string[]>;
  close(): Promise<void>;
}

/** A stable string id for a topic partition, for maps. */
export function tpKey(tp: TopicPartition): string {
  return `${tp.topic}:${tp.partition}`;
}
