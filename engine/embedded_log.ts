/**
 * The durable partitioned log of embedded mode, kept in the embedded database (tables and queries
 * in sql/embedded_log.ts). Kafka's semantics where the runtime relies on them: topics of
 * partitions, a keyed record goes where Kafka's default partitioner would put it, dense per-partition
 * offsets, and an append resolves only after its transaction committed. One consumer
 * (embedded_consumer.ts) owns every partition; appends in this process wake it at once.
 */
import { Buffer } from "node:buffer";
import {
  appendRecords,
  createEmbeddedLogSchema,
  ensureTopics,
  loadTopics,
  registerGroup,
  type StoredRecordInput,
} from "../sql/embedded_log.ts";
import type { Sql } from "./database.ts";
import { EmbeddedConsumer, type EmbeddedConsumerOptions } from "./embedded_consumer.ts";
import { LogUnavailableError } from "./errors.ts";
import type { AppendOptions, LogAdmin, LogProducer, OutgoingRecord, TopicSpec } from "./log.ts";
import type { Logger } from "./logger.ts";
import { partitionForKey } from "./partitioner.ts";

/** Settings of the embedded log. */
export interface EmbeddedLogOptions {
  readonly logger: Logger;
  /** Deadline for an append to commit; past it the append rejects with LogUnavailableError. */
  readonly appendTimeoutMs?: number;
  /** Append time of records, injectable for tests. */
  readonly clock?: () => number;
}

const DEFAULT_APPEND_TIMEOUT_MS = 5_000;
const encoder = new TextEncoder();

/** The log: topic administration, and the factory of its producer and consumer. */
export class EmbeddedLog implements LogAdmin {
  readonly #sql: Sql;
  readonly #options: EmbeddedLogOptions;
  readonly #log: Logger;
  #partitions = new Map<string, number>();
  readonly #listeners = new Set<() => void>();
  /** Groups with a started consumer: the embedded log's groups have one member, which owns every partition. */
  readonly #members = new Set<string>();
  /** Appends and group-offset commits in flight, awaited by close(). */
  readonly #writing = new Set<Promise<unknown>>();

  private constructor(sql: Sql, options: EmbeddedLogOptions) {
    this.#sql = sql;
    this.#options = options;
    this.#log = options.logger.child({ component: "embedded-log" });
  }

  /** Opens the log on `sql`, creating its tables if missing. */
  static async open(sql: Sql, options: EmbeddedLogOptions): Promise<EmbeddedLog> {
    await createEmbeddedLogSchema(sql);
    const log = new EmbeddedLog(sql, options);
    log.#partitions = await loadTopics(sql);
    return log;
  }

  async ensureTopics(topics: readonly TopicSpec[], _replicationFactor = 1): Promise<void> {
    this.#partitions = await ensureTopics(this.#sql, topics);
    for (const { topic, partitions } of topics) {
      const existing = this.#partitions.get(topic);
      if (existing !== partitions) {
        this.#log.warn("topic exists with another partition count; keeping it", {
          topic,
          partitions: existing,
          configured: partitions,
        });
      }
    }
  }

  /**
   * Declares `groupId` a consumer of `topics`: retention keeps every record of theirs the group has
   * not committed past, from now on, even before the group's first commit.
   */
  async registerGroup(groupId: string, topics: readonly string[]): Promise<void> {
    await registerGroup(this.#sql, groupId, topics);
  }

  async missingTopics(topics: readonly string[]): Promise<string[]> {
    const existing = await loadTopics(this.#sql);
    return topics.filter((topic) => !existing.has(topic));
  }

  partitionCount(topic: string): Promise<number> {
    const count = this.#partitions.get(topic);
    if (count === undefined) return Promise.reject(new Error(`Cannot find topic ${topic}: it was never created`));
    return Promise.resolve(count);
  }

  /** Waits for appends and commits in flight; the database itself is closed by its owner. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#writing]);
  }

  /** Keeps `write` until it settles, so that close() waits for it. */
  track(write: Promise<unknown>): void {
    this.#writing.add(write);
    write.then(() => this.#writing.delete(write), () => this.#writing.delete(write));
  }

  /** The producer: `append` resolves once the records are committed. */
  producer(): LogProducer {
    return {
      append: (records, options) => this.append(records, options),
      close: () => this.close(),
    };
  }

  /** A consumer owning every partition of the topics it starts on. */
  consumer(options: Omit<EmbeddedConsumerOptions, "logger"> & { logger?: Logger }): EmbeddedConsumer {
    return new EmbeddedConsumer(this.#sql, this, { logger: this.#options.logger, ...options });
  }

  /**
   * Admits `groupId`'s member; returns the function that lets it leave. A second member of a group is refused: it would
   * be handed every partition too, and every record would be handled twice.
   */
  join(groupId: string): () => void {
    if (this.#members.has(groupId)) {
      throw new Error(
        `Cannot start the consumer: group ${groupId} already has a member in this process, and a group of the ` +
          "embedded log has one member (stop it first, or use another group id)",
      );
    }
    this.#members.add(groupId);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#members.delete(groupId);
    };
  }

  /** Calls `wake` after every committed append; returns the unsubscribe function. */
  onAppend(wake: () => void): () => void {
    this.#listeners.add(wake);
    return () => this.#listeners.delete(wake);
  }

  /**
   * Appends every record in one transaction; rejects with LogUnavailableError if it did not commit in time
   * (`options.timeoutMs`, else the log's `appendTimeoutMs`: a checkpoint's outputs get a longer deadline than ingestion).
   */
  async append(records: readonly OutgoingRecord[], options: AppendOptions = {}): Promise<void> {
    if (records.length === 0) return;
    const rows = records.map((r) => this.#toRow(r));
    const timeoutMs = options.timeoutMs ?? this.#options.appendTimeoutMs ?? DEFAULT_APPEND_TIMEOUT_MS;
    const write = appendRecords(this.#sql, rows, (this.#options.clock ?? Date.now)());
    this.track(write);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        write,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new LogUnavailableError(`append of ${records.length} record(s) not committed within ${timeoutMs} ms`),
              ),
            timeoutMs,
          );
        }),
      ]);
    } catch (error) {
      if (error instanceof LogUnavailableError) throw error;
      throw new LogUnavailableError(`the embedded log did not store the append: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      write.catch(() => {});
    }
    for (const wake of this.#listeners) wake();
  }

  #toRow(r: OutgoingRecord): StoredRecordInput {
    const partitions = this.#partitions.get(r.topic);
    // Programmer errors, not outages: plain Errors, never retried.
    if (partitions === undefined) throw new Error(`Cannot append to topic ${r.topic}: it was never created`);
    const partition = r.partition ?? partitionForKey(r.key, partitions);
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      throw new Error(`Cannot append to ${r.topic}: current partition is ${partition}, the topic has ${partitions}`);
    }
    const bytes = typeof r.value === "string" ? encoder.encode(r.value) : r.value;
    return {
      topic: r.topic,
      partition,
      key: r.key,
      valueBase64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
      headersJson: JSON.stringify(r.headers ?? {}),
    };
  }
}
