/**
 * Partitions' high watermarks: where a topic's partitions end, records of transactions still open included. The engine
 * reads `read_committed`, and Kafka hands such a reader nothing at or past an open transaction's first record (the last
 * stable offset) until the transaction commits or aborts; then the reader goes on to the high watermark. So "records
 * left to handle" is the high watermark past the position: with the last stable offset an idle partition's clock
 * followed the wall past an open transaction's records (an order committed seconds later came after its cart's
 * `cart_abandoned`). kafkajs 2.2.4 (its last release) lists offsets `read_committed` in its admin and lets no caller
 * choose; its Cluster takes an isolation level (kafka.consumer({ readUncommitted }) sets it). So this lister makes a
 * Cluster of its own with the Kafka client's private factory (the one kafka.admin() uses: the same brokers, TLS, SASL,
 * retry and logger), set to READ_UNCOMMITTED, and lists offsets as kafkajs's admin does, in one request per leader.
 * tests/unit/kafka_high_watermarks_test.ts checks the factory and the sharing of requests;
 * tests/integration/kafka_transactions_test.ts that the end covers an open transaction.
 */
import type { Kafka } from "kafkajs";
import { KafkaClientMismatchError, LogUnavailableError } from "./errors.ts";

/** kafkajs's ISOLATION_LEVEL.READ_UNCOMMITTED (src/protocol/isolationLevel.js). */
const READ_UNCOMMITTED = 0;
/** The description of kafkajs's PRIVATE.CREATE_CLUSTER symbol (src/index.js). */
const CREATE_CLUSTER = "private:Kafka:createCluster";

/**
 * Most an ask waits for its answer. kafkajs retries an unreachable broker for about 25 s; every caller takes a failed
 * ask for "unknown" (an idle clock waits, a batch is read again), and the housekeeping round a stop waits for used to
 * wait that long, past main.ts's 10 s deadline. The request itself goes on, and asks meanwhile share it.
 */
export const LIST_OFFSETS_TIMEOUT_MS = 2_000;

/** The part of kafkajs's Cluster (src/cluster/index.js) the lister uses. */
export interface OffsetCluster {
  readonly isolationLevel?: number;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): readonly { partitionId: number }[];
  fetchTopicsOffset(
    topics: { topic: string; fromBeginning: boolean; partitions: { partition: number }[] }[],
  ): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
}

/** A kafkajs Cluster of `kafka`'s settings that lists offsets READ_UNCOMMITTED (not connected yet). */
export function readUncommittedCluster(kafka: Kafka): OffsetCluster {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const factory = symbol === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[symbol];
  if (typeof factory !== "function") {
    throw new KafkaClientMismatchError(
      "kafkajs has no private cluster factory (Symbol(private:Kafka:createCluster)): engine/kafka_high_watermarks.ts " +
        "needs kafkajs 2.2.4",
    );
  }
  return factory({ allowAutoTopicCreation: false, isolationLevel: READ_UNCOMMITTED }) as OffsetCluster;
}

/**
 * Lists topics' high watermarks, and their log start offsets (the same whatever the isolation level: one request, where
 * kafkajs's admin lists the ends and then the starts); concurrent asks for one topic share one request (a housekeeping
 * round's ticks), and each waits LIST_OFFSETS_TIMEOUT_MS at most.
 */
export class HighWatermarks {
  /** Makes the cluster at the first ask (a client that cannot fails that ask, and the next ones, with the reason). */
  readonly #makeCluster: () => OffsetCluster;
  #cluster: OffsetCluster | undefined;
  #connected: Promise<void> | null = null;
  /** The request in flight per topic, which later asks join until it is answered: ends, and starts. */
  readonly #inFlight = new Map<string, Promise<ReadonlyMap<number, number>>>();
  readonly #startsInFlight = new Map<string, Promise<ReadonlyMap<number, number>>>();
  /** A request failed: the next one reads the metadata afresh first (a leader may have moved). */
  #stale = false;
  /** Most an ask waits for its answer (LIST_OFFSETS_TIMEOUT_MS unless a test says otherwise). */
  readonly #timeoutMs: number;

  constructor(makeCluster: () => OffsetCluster, timeoutMs = LIST_OFFSETS_TIMEOUT_MS) {
    this.#makeCluster = makeCluster;
    this.#timeoutMs = timeoutMs;
  }

  /** Every partition's high watermark of `topic` (the offset its next record will get). */
  of(topic: string): Promise<ReadonlyMap<number, number>> {
    return this.#shared(this.#inFlight, topic, false);
  }

  /** Every partition's log start offset of `topic` (records before it were deleted by retention). */
  starts(topic: string): Promise<ReadonlyMap<number, number>> {
    return this.#shared(this.#startsInFlight, topic, true);
  }

  #shared(
    inFlight: Map<string, Promise<ReadonlyMap<number, number>>>,
    topic: string,
    fromBeginning: boolean,
  ): Promise<ReadonlyMap<number, number>> {
    let pending = inFlight.get(topic);
    if (!pending) {
      pending = this.#list(topic, fromBeginning).finally(() => inFlight.delete(topic));
      inFlight.set(topic, pending);
    }
    return this.#bounded(pending, topic);
  }

  /**
   * `listing`, or a LogUnavailableError once the ask has waited #timeoutMs. The request stays shared until kafkajs
   * settles it, so that an outage does not pile up one retrying request per ask.
   */
  #bounded<T>(listing: Promise<T>, topic: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new LogUnavailableError(`offsets of ${topic} not listed within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    listing.catch(() => {});
    return Promise.race([listing, late]).finally(() => clearTimeout(timer));
  }

  async #list(topic: string, fromBeginning: boolean): Promise<ReadonlyMap<number, number>> {
    const cluster = this.#cluster ??= this.#makeCluster();
    try {
      // A failed connect is forgotten, so that the next ask tries again.
      this.#connected ??= cluster.connect().catch((error) => {
        this.#connected = null;
        throw error;
      });
      await this.#connected;
      await cluster.addTargetTopic(topic);
      if (this.#stale) await cluster.refreshMetadata();
      else await cluster.refreshMetadataIfNecessary();
      const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }));
      const listed = await cluster.fetchTopicsOffset([{ topic, fromBeginning, partitions }]);
      this.#stale = false;
      const found = listed.find((t) => t.topic === topic)?.partitions ?? [];
      return new Map(found.map((p) => [p.partition, Number(p.offset)]));
    } catch (error) {
      this.#stale = true;
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.#connected && this.#cluster) await this.#cluster.disconnect();
    this.#connected = null;
  }
}
