/** Kafka topic administration and offsets (the LogAdmin of log.ts). */
import type { Kafka } from "kafkajs";
import { LogUnavailableError } from "./errors.ts";
import type { LogAdmin, TopicPartition, TopicSpec } from "./log.ts";

/** Topic administration. */
export class KafkaAdmin implements LogAdmin {
  #admin;
  #connected: Promise<void> | null = null;

  constructor(kafka: Kafka) {
    this.#admin = kafka.admin();
  }

  #connect(): Promise<void> {
    // A failed connect is forgotten, so that the next call tries again (it used to fail for ever).
    this.#connected ??= this.#admin.connect().catch((error) => {
      this.#connected = null;
      throw error;
    });
    return this.#connected;
  }

  async ensureTopics(topics: readonly TopicSpec[], replicationFactor: number): Promise<void> {
    await this.#connect();
    const existing = new Set(await this.#admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return;
    await this.#admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((t) => ({ topic: t.topic, numPartitions: t.partitions, replicationFactor })),
    });
  }

  async partitionCount(topic: string): Promise<number> {
    await this.#connect();
    const metadata = await this.#admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0].partitions.length;
  }

  /** The partition's log start offset (`low`): records before it were deleted by retention. */
  async earliestOffset(tp: TopicPartition): Promise<number> {
    return Number((await this.#offsets(tp)).low);
  }

  /**
   * The partition's end as a read_committed consumer sees it (`high`, read_committed): the offset its next record will
   * get, or the first offset of a transaction still open (the last stable offset).
   */
  async endOffset(tp: TopicPartition): Promise<number> {
    return Number((await this.#offsets(tp)).high);
  }

  /** Every partition's end of `topic` (as `endOffset`), in one request. */
  async endOffsets(topic: string): Promise<Map<number, number>> {
    await this.#connect();
    const offsets = await this.#admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  }

  async #offsets(tp: TopicPartition): Promise<{ low: string; high: string }> {
    await this.#connect();
    const offsets = await this.#admin.fetchTopicOffsets(tp.topic);
    const found = offsets.find((o) => o.partition === tp.partition);
    if (!found) throw new LogUnavailableError(`no offsets for ${tp.topic}:${tp.partition}`);
    return found;
  }

  async close(): Promise<void> {
    if (this.#connected) await this.#admin.disconnect();
  }
}
