/** Kafka topic administration and offsets (the LogAdmin of log.ts). */
import type { Kafka } from "kafkajs";
import { LogUnavailableError } from "./errors.ts";
import { HighWatermarks, LIST_OFFSETS_TIMEOUT_MS, readUncommittedCluster } from "./kafka_high_watermarks.ts";
import type { LogAdmin, TopicPartition, TopicSpec } from "./log.ts";

/**
 * `min.insync.replicas` of the topics the engine creates: with Kafka's default of 1, `acks=all` is answered by the
 * leader alone once the other replicas fell out of sync, and a 202 could rest on one disk. Two whenever there are three
 * replicas or more (one broker may be down, as Kafka's own guidance has it); with two, one, so that losing either broker
 * does not stop ingestion.
 */
export function minInsyncReplicas(replicationFactor: number): number {
  return replicationFactor >= 3 ? 2 : 1;
}

/**
 * Most `committedOffset` waits for the group's offsets: it is read beside the partition's start and end
 * (LIST_OFFSETS_TIMEOUT_MS each) while a batch is handled, which a hung broker held for kafkajs's 30 s request timeout
 * (and with it a stop, which waits for the batches being handled, past main.ts's 10 s deadline). A failed ask fails the
 * batch, which is read again after a backoff.
 */
export const FETCH_OFFSETS_TIMEOUT_MS = LIST_OFFSETS_TIMEOUT_MS;

/** How long topic creation waits for every new partition to have a leader in the broker's metadata. */
export const TOPIC_LEADERS_TIMEOUT_MS = 30_000;
/** Pause between two reads of the new topics' metadata. */
const TOPIC_LEADERS_POLL_MS = 100;

/** What `waitForLeaders` reads: kafkajs admin's fetchTopicMetadata. */
export type FetchTopicMetadata = (
  topics: readonly string[],
) => Promise<{ topics: { name: string; partitions: { partitionId: number; leader: number }[] }[] }>;

/** kafkajs error types meaning the broker's metadata does not have a new topic's leaders yet. */
const NOT_YET = new Set(["UNKNOWN_TOPIC_OR_PARTITION", "LEADER_NOT_AVAILABLE"]);

/**
 * Waits until every partition of `topics` has a leader, reading metadata again while the broker does not know them yet
 * (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, or a leader of -1); a LogUnavailableError after `timeoutMs`.
 */
export async function waitForLeaders(
  fetch: FetchTopicMetadata,
  topics: readonly string[],
  timeoutMs: number,
  pollMs = TOPIC_LEADERS_POLL_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let waitingFor = "no answer yet";
  const late = () =>
    new LogUnavailableError(
      `topics created, but their partitions had no leader within ${timeoutMs} ms (${waitingFor}): ${topics.join(", ")}`,
    );
  for (;;) {
    let metadata;
    try {
      // kafkajs retries a metadata request itself for up to ~45 s: the wait's own bound holds over it.
      metadata = await bounded(fetch(topics), Math.max(0, deadline - Date.now()), LEADERS_LATE);
    } catch (error) {
      if (error instanceof LogUnavailableError && error.message === LEADERS_LATE) throw late();
      if (!NOT_YET.has(errorType(error) ?? "")) throw error;
      waitingFor = (error as Error).message;
    }
    if (metadata) {
      const leaderless = metadata.topics.filter((t) =>
        t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0)
      );
      if (leaderless.length === 0 && metadata.topics.length === topics.length) return;
      waitingFor = `no leader yet for ${leaderless.map((t) => t.name).join(", ") || "every topic"}`;
    }
    if (Date.now() + pollMs > deadline) throw late();
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** `bounded`'s message when a metadata read outlasts the wait. */
const LEADERS_LATE = "metadata not read within the wait for leaders";

/** The kafkajs protocol error type of `error` or of what it wraps (kafkajs's retrier wraps the last one it met). */
function errorType(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === "string") return type;
  }
  return undefined;
}

/** Topic administration. */
export class KafkaAdmin implements LogAdmin {
  #admin;
  #connected: Promise<void> | null = null;
  /**
   * Ends listed read_uncommitted (kafkajs's admin lists them read_committed), and starts: see
   * engine/kafka_high_watermarks.ts.
   */
  #ends: HighWatermarks;

  constructor(kafka: Kafka) {
    this.#admin = kafka.admin();
    this.#ends = new HighWatermarks(() => readUncommittedCluster(kafka));
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
      // kafkajs's own wait gives up on the first UNKNOWN_TOPIC_OR_PARTITION, which a broker answers until its
      // metadata has the new topics: start-up failed that way for 35 of 36 engines creating their topics at once.
      waitForLeaders: false,
      topics: missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.partitions,
        replicationFactor,
        configEntries: [{ name: "min.insync.replicas", value: String(minInsyncReplicas(replicationFactor)) }],
      })),
    });
    await waitForLeaders(
      (topics) => this.#admin.fetchTopicMetadata({ topics: [...topics] }),
      missing.map((t) => t.topic),
      TOPIC_LEADERS_TIMEOUT_MS,
    );
  }

  async missingTopics(topics: readonly string[]): Promise<string[]> {
    await this.#connect();
    const existing = new Set(await this.#admin.listTopics());
    return topics.filter((topic) => !existing.has(topic));
  }

  async partitionCount(topic: string): Promise<number> {
    await this.#connect();
    const metadata = await this.#admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0].partitions.length;
  }

  /**
   * The partition's log start offset: records before it were deleted by retention. Listed alone, in one request (the
   * admin's fetchTopicOffsets lists the ends too, a second round trip).
   */
  async earliestOffset(tp: TopicPartition): Promise<number> {
    const start = (await this.#ends.starts(tp.topic)).get(tp.partition);
    if (start === undefined) throw new LogUnavailableError(`no offsets for ${tp.topic}:${tp.partition}`);
    return start;
  }

  /**
   * The partition's end (its high watermark): the offset its next record will get. Records of a transaction still open
   * are before it: a read_committed reader is handed them (or goes past them, aborted) once the transaction ends.
   */
  async endOffset(tp: TopicPartition): Promise<number> {
    const end = (await this.#ends.of(tp.topic)).get(tp.partition);
    if (end === undefined) throw new LogUnavailableError(`no offsets for ${tp.topic}:${tp.partition}`);
    return end;
  }

  /** Every partition's end of `topic` (as `endOffset`), in one request (shared with concurrent asks). */
  endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    return this.#ends.of(topic);
  }

  /** `groupId`'s committed offset of the partition; undefined if it has none (kafkajs lists -1). */
  async committedOffset(groupId: string, tp: TopicPartition): Promise<number | undefined> {
    const fetching = this.#connect().then(() => this.#admin.fetchOffsets({ groupId, topics: [tp.topic] }));
    const [listed] = await bounded(
      fetching,
      FETCH_OFFSETS_TIMEOUT_MS,
      `committed offsets of ${groupId} on ${tp.topic} not listed within ${FETCH_OFFSETS_TIMEOUT_MS} ms`,
    );
    const offset = Number(listed?.partitions.find((p) => p.partition === tp.partition)?.offset ?? -1);
    return offset >= 0 ? offset : undefined;
  }

  async close(): Promise<void> {
    await this.#ends.close();
    if (this.#connected) await this.#admin.disconnect();
  }
}

/** `asked`, or a LogUnavailableError saying `late` after `ms`; the request itself goes on, its outcome ignored. */
function bounded<T>(asked: Promise<T>, ms: number, late: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LogUnavailableError(late)), ms);
  });
  asked.catch(() => {});
  return Promise.race([asked, timeout]).finally(() => clearTimeout(timer));
}
