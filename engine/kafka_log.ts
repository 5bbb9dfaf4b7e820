/**
 * The partitioned log on Apache Kafka, through kafkajs. This and its three runtime patches to kafkajs
 * (kafkajs_encoder.ts, kafkajs_request_queue.ts, kafkajs_crc32c.ts) are the only modules that import
 * kafkajs; swapping the client means rewriting this file and dropping those three, nothing else.
 */
import { type Consumer, type EachBatchPayload, Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { ensureError, LogUnavailableError } from "./errors.ts";
import type {
  AppendOptions,
  LogAdmin,
  LogConsumer,
  LogProducer,
  LogRecord,
  OutgoingRecord,
  PartitionListener,
  RecordBatch,
  TopicPartition,
  TopicSpec,
} from "./log.ts";
import { tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import { installFastCrc32c } from "./kafkajs_crc32c.ts";
import { installFastEncoder } from "./kafkajs_encoder.ts";
import { installRequestQueueFix } from "./kafkajs_request_queue.ts";

/** Settings the Kafka adapter needs, taken from the engine's Config. */
export interface KafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: Logger;
  /** Deadline for an append to be acknowledged by all in-sync replicas. */
  readonly publishTimeoutMs: number;
}

/** Consumer-group settings. */
export interface KafkaConsumerOptions {
  readonly groupId: string;
  /** How many partitions are handled at the same time. */
  readonly partitionsConsumedConcurrently?: number;
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  /** Longest time the broker holds a fetch open when there is nothing new; bounds idle latency. */
  readonly maxWaitTimeMs?: number;
}

const CONSUMER_DEFAULTS = {
  partitionsConsumedConcurrently: 12,
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1_000,
  maxWaitTimeMs: 100,
} as const;

const KAFKAJS_LEVEL_NAMES: Record<number, "debug" | "info" | "warn" | "error"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/**
 * kafkajs warnings that describe a choice this adapter made on purpose, logged at debug level so
 * that every start does not print them: retries are bounded because a failed idempotent producer
 * is replaced (see KafkaProducer), which is what keeps the guarantee the warning is about.
 */
const EXPECTED_KAFKAJS_WARNINGS = new Set([
  "Limiting retries for the idempotent producer may invalidate EoS guarantees",
]);

/**
 * Broker errors kafkajs logs at error level although it retries them: a freshly started broker
 * answers the first producer-id request of every client this way for a moment.
 */
const RETRIED_KAFKAJS_ERRORS = new Set([
  "The coordinator is loading and hence can't process requests for this group",
]);

/**
 * Patches kafkajs (idempotent; before creating clients): faster varints and CRC-32C, no idle 1 ms
 * polling loop. Returns false if the CRC-32C came too late (kafkajs then keeps its own).
 */
export function patchKafkajs(): boolean {
  installFastEncoder();
  installRequestQueueFix();
  return installFastCrc32c();
}

/** Creates a kafkajs client whose own logs go through our structured logger. */
export function createKafka(options: KafkaOptions): Kafka {
  const log = options.logger.child({ component: "kafkajs" });
  if (!patchKafkajs()) log.debug("kafkajs's record batch encoder was loaded before; it keeps its own CRC-32C");
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    logLevel: logLevel.WARN,
    retry: { initialRetryTime: 100, retries: 8 },
    logCreator: () => ({ namespace, level, log: entry }) => {
      const { message, ...fields } = entry;
      const expected = EXPECTED_KAFKAJS_WARNINGS.has(String(message)) ||
        RETRIED_KAFKAJS_ERRORS.has(String((fields as { error?: unknown }).error));
      const name = expected ? "debug" : KAFKAJS_LEVEL_NAMES[level] ?? "info";
      log[name](String(message), { namespace, ...fields });
    },
  });
}

/** Runs `promise` with a deadline; on expiry rejects with LogUnavailableError. */
function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LogUnavailableError(`${what} not acknowledged within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Most bytes of record values and keys coalesced into one produce request. Kafka refuses a
 * partition's record batch over `message.max.bytes` (1 MiB by default), and in the worst case all
 * records go to one partition; a single larger append is still sent, alone.
 */
const MAX_COALESCED_BYTES = 512 * 1024;

/** An append waiting for its records to be acknowledged. */
interface PendingAppend {
  readonly records: readonly OutgoingRecord[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: LogUnavailableError) => void;
  settled: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

const NON_ASCII = /[\u0080-\uffff]/;

/** Bytes of `text` in UTF-8, without encoding it (ASCII, the usual case, is its length). */
export function utf8Bytes(text: string): number {
  if (!NON_ASCII.test(text)) return text.length;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if ((c & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Size of records as the broker counts them (keys, values and headers in UTF-8), for the cap on a
 * request: counted in UTF-16 units and without headers, a burst of dead letters (each with its
 * error message in a header) or of non-ASCII text made requests the broker refused every time.
 */
export function recordBytes(records: readonly OutgoingRecord[]): number {
  let bytes = 0;
  for (const r of records) {
    bytes += utf8Bytes(r.key) + (typeof r.value === "string" ? utf8Bytes(r.value) : r.value.byteLength);
    if (r.headers) { for (const name in r.headers) bytes += utf8Bytes(name) + utf8Bytes(r.headers[name]); }
  }
  return bytes;
}

function settle(pending: PendingAppend, error?: LogUnavailableError): void {
  if (pending.settled) return;
  pending.settled = true;
  clearTimeout(pending.timer);
  if (error) pending.reject(error);
  else pending.resolve();
}

/**
 * Producer with acks=all and idempotence, so retries inside kafkajs never duplicate a record.
 *
 * kafkajs sends one produce request per `send` and, with idempotence, serialises requests per
 * broker; one request per HTTP call would cap ingestion at one round trip per call. So appends
 * that arrive while a request is in flight are coalesced into the next one (no linger: an append
 * to an idle producer goes out at once). Each append still resolves only after the request
 * holding its records was acknowledged, keeps its order relative to earlier appends, and is
 * rejected with LogUnavailableError if not acknowledged within its own deadline (a queued append
 * whose deadline passes before it is sent is dropped, never sent). A rejected append may still
 * be stored later by kafkajs's own retries, so a 503 means "not acknowledged", not "not stored".
 */
export class KafkaProducer implements LogProducer {
  #producer: Producer;
  #connected: Promise<void> | null = null;
  #queue: PendingAppend[] = [];
  #inFlight: Promise<void> | null = null;

  constructor(private readonly kafka: Kafka, private readonly options: KafkaOptions) {
    this.#producer = this.#createProducer();
  }

  #createProducer(): Producer {
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Kafka's own murmur2 partitioner (kafkajs 2's default), named so kafkajs does not warn about it.
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    producer.on(producer.events.DISCONNECT, () => {
      if (producer === this.#producer) this.#connected = null;
    });
    return producer;
  }

  /**
   * Replaces the kafkajs producer after a failed or abandoned send. An idempotent producer whose
   * request was abandoned at its deadline may still deliver it; the next request on the same
   * producer id would then be out of sequence, which kafkajs never recovers from. A new producer
   * id starts a clean sequence; the abandoned records may still land once (at-least-once, which
   * event and output ids make harmless).
   */
  #resetProducer(): void {
    const old = this.#producer;
    this.#producer = this.#createProducer();
    this.#connected = null;
    old.disconnect().catch(() => {});
  }

  #connect(): Promise<void> {
    if (!this.#connected) {
      this.#connected = this.#producer.connect().catch((error) => {
        this.#connected = null;
        throw error;
      });
    }
    return this.#connected;
  }

  append(records: readonly OutgoingRecord[], options: AppendOptions = {}): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const ms = options.timeoutMs ?? this.options.publishTimeoutMs;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const pending: PendingAppend = { records, bytes: recordBytes(records), resolve, reject, settled: false };
    pending.timer = setTimeout(() => {
      const queued = this.#queue.indexOf(pending);
      if (queued >= 0) this.#queue.splice(queued, 1);
      settle(
        pending,
        new LogUnavailableError(`append of ${records.length} record(s) not acknowledged within ${ms} ms`),
      );
    }, ms);
    this.#queue.push(pending);
    this.#pump();
    return promise;
  }

  /** Sends the queued appends as one request unless one is in flight; runs again when it ends. */
  #pump(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    const batch: PendingAppend[] = [];
    let bytes = 0;
    while (this.#queue.length > 0 && (batch.length === 0 || bytes + this.#queue[0].bytes <= MAX_COALESCED_BYTES)) {
      const next = this.#queue.shift()!;
      bytes += next.bytes;
      batch.push(next);
    }
    // The pipeline waits for the request at most one deadline: a request kafkajs keeps retrying
    // during an outage must not hold back the appends behind it once the broker is back.
    this.#inFlight = this.#send(batch.flatMap((p) => p.records))
      .then(
        () => batch.forEach((p) => settle(p)),
        (error) => {
          const failure = error instanceof LogUnavailableError ? error : new LogUnavailableError(
            `Kafka did not acknowledge the append: ${(error as Error).message}`,
            { cause: error },
          );
          batch.forEach((p) => settle(p, failure));
          this.#resetProducer();
        },
      )
      .finally(() => {
        this.#inFlight = null;
        this.#pump();
      });
  }

  /**
   * Sends records in order, in requests of at most MAX_COALESCED_BYTES each (a checkpoint after a
   * long catch-up can emit megabytes, and the broker refuses a partition batch over
   * `message.max.bytes`); each request is acknowledged before the next goes out.
   */
  async #send(records: readonly OutgoingRecord[]): Promise<void> {
    await this.#connect();
    let chunk: OutgoingRecord[] = [];
    let bytes = 0;
    for (const record of records) {
      const size = recordBytes([record]);
      if (chunk.length > 0 && bytes + size > MAX_COALESCED_BYTES) {
        await withDeadline(this.#sendRequest(chunk), this.options.publishTimeoutMs, "append");
        chunk = [];
        bytes = 0;
      }
      chunk.push(record);
      bytes += size;
    }
    if (chunk.length > 0) await withDeadline(this.#sendRequest(chunk), this.options.publishTimeoutMs, "append");
  }

  async #sendRequest(records: readonly OutgoingRecord[]): Promise<void> {
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const record of records) {
      const list = byTopic.get(record.topic) ?? [];
      list.push(record);
      byTopic.set(record.topic, list);
    }
    await this.#producer.sendBatch({
      acks: -1,
      timeout: this.options.publishTimeoutMs,
      topicMessages: [...byTopic].map(([topic, list]) => ({
        topic,
        messages: list.map((r) => ({
          key: r.key,
          // A view, not a copy: an appended record's bytes are not changed afterwards (log.ts).
          value: typeof r.value === "string"
            ? r.value
            : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength),
          headers: r.headers ? { ...r.headers } : undefined,
          partition: r.partition,
        })),
      })),
    });
  }

  /** Waits for the appends already made, then disconnects. */
  async close(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    await this.#producer.disconnect();
  }
}

function toLogRecord(topic: string, partition: number, m: EachBatchPayload["batch"]["messages"][number]): LogRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(m.headers ?? {})) {
    if (value !== undefined) headers[name] = String(value);
  }
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key ? m.key.toString("utf8") : null,
    value: m.value ? new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength) : null,
    headers,
    timestamp: Number(m.timestamp),
  };
}

/** A partition's batches handed to the listener: delivered one after the other, counted for pausing. */
interface Lane {
  /** Batches handed off and not finished (the one being handled included). */
  batches: number;
  /** Consecutive handler failures, for the backoff before the batch is read again. */
  failures: number;
  /** Seeks so far: a batch handed off before a seek is dropped, the seek re-reads it. */
  seeks: number;
  /** The last batch handed off; the next one is delivered after it. */
  tail: Promise<void>;
}

/** Batches of one partition handed off at a time; the partition is paused at this many, resumed below. */
const MAX_BATCHES_PER_PARTITION = 2;
/** Wait before a batch whose handler threw is read again: doubles from `initial` up to `max`. */
const HANDLER_RETRY_MS = { initial: 100, max: 2_000 } as const;

/**
 * Consumer-group member. kafkajs reports a new assignment only after the rebalance (GROUP_JOIN),
 * so revocation is derived by comparing assignments; batches wait until the new assignment
 * has been handed to the listener and each partition sought to its checkpointed offset.
 *
 * kafkajs fetches again only when every batch of its last fetch is handled, so one partition
 * waiting on its checkpoint would hold up all the others. Batches are therefore handed off: each
 * partition's go to the listener one after the other, in a lane of their own, while kafkajs fetches
 * on; a partition with MAX_BATCHES_PER_PARTITION batches in its lane is paused until one finishes,
 * so memory stays bounded and a partition that cannot make progress stops being fetched.
 */
export class KafkaConsumer implements LogConsumer {
  #consumer: Consumer;
  #owned = new Map<string, TopicPartition>();
  #ready: Promise<void> = Promise.resolve();
  #logger: Logger;
  readonly #lanes = new Map<string, Lane>();
  #stopping = false;
  /** Asks the broker for a partition's log start offset; connected on first use. */
  #admin: KafkaAdmin;

  constructor(kafka: Kafka, private readonly options: KafkaConsumerOptions, logger: Logger) {
    this.#logger = logger.child({ component: "kafka-consumer" });
    this.#admin = new KafkaAdmin(kafka);
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? CONSUMER_DEFAULTS.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs ?? CONSUMER_DEFAULTS.heartbeatIntervalMs,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? CONSUMER_DEFAULTS.maxWaitTimeMs,
      allowAutoTopicCreation: false,
    });
  }

  async start(topics: readonly string[], listener: PartitionListener): Promise<void> {
    const consumer = this.#consumer;
    this.#stopping = false;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assignment = event.payload.memberAssignment as Record<string, number[]>;
      // Batches queued for partitions this member no longer has are dropped at once, not after the
      // assignments queued before this one: their new owner may be claiming them already.
      const kept = new Set(
        Object.entries(assignment).flatMap(([topic, partitions]) =>
          partitions.map((partition) => tpKey({ topic, partition }))
        ),
      );
      for (const key of [...this.#lanes.keys()]) if (!kept.has(key)) this.#lanes.delete(key);
      this.#ready = this.#ready.then(() => this.#onAssignment(assignment, listener)).catch((error) => {
        this.#logger.error("handling a new assignment failed", { error });
      });
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#logger.error("consumer crashed", { error: event.payload.error, restart: event.payload.restart });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ??
        CONSUMER_DEFAULTS.partitionsConsumedConcurrently,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isStale, isRunning }) => {
        await this.#ready;
        const { topic, partition } = batch;
        if (this.#stopping || !isRunning() || isStale() || !this.#owned.has(tpKey(batch))) return;
        const records = batch.messages.map((m) => toLogRecord(topic, partition, m));
        if (records.length === 0) return;
        // kafkajs's position moves on at once; where a partition resumes after a crash is the
        // checkpoint's business, and a rewind seeks.
        resolveOffset(String(records[records.length - 1].offset));
        this.#handOff(listener, { topic, partition, records, highWatermark: Number(batch.highWatermark) }, heartbeat);
      },
    });
  }

  /** Queues a batch in its partition's lane, pausing the partition while the lane is full. */
  #handOff(listener: PartitionListener, batch: RecordBatch, heartbeat: () => Promise<void>): void {
    const tp = { topic: batch.topic, partition: batch.partition };
    const key = tpKey(tp);
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { batches: 0, seeks: 0, failures: 0, tail: Promise.resolve() };
      this.#lanes.set(key, lane);
    }
    const current = lane;
    const seeks = lane.seeks;
    lane.batches++;
    // `>=`, not `===`: a consumer restarted by kafkajs forgets its pauses, so each hand-off re-applies it.
    if (lane.batches >= MAX_BATCHES_PER_PARTITION) this.pause([tp]);
    const run = async (): Promise<void> => {
      // Dropped if the partition was sought (the seek re-reads it), revoked or stopped since.
      if (this.#stopping || current.seeks !== seeks || this.#lanes.get(key) !== current) return;
      try {
        await listener.batch(batch, heartbeat);
        current.failures = 0;
      } catch (error) {
        // The lane waits (the partition is paused once it is full), then reads the batch again.
        const delay = Math.min(HANDLER_RETRY_MS.initial * 2 ** current.failures++, HANDLER_RETRY_MS.max);
        this.#logger.error("batch handler failed; reading the batch again", {
          topic: tp.topic,
          partition: tp.partition,
          offset: batch.records[0].offset,
          error: ensureError(error),
          delay,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (!this.#stopping && this.#lanes.get(key) === current) this.seek(tp, batch.records[0].offset);
      }
    };
    lane.tail = lane.tail.then(run).catch((error) => {
      this.#logger.error("a batch lane failed", {
        topic: tp.topic,
        partition: tp.partition,
        error: ensureError(error),
      });
    }).finally(() => {
      current.batches--;
      if (current.batches < MAX_BATCHES_PER_PARTITION && !this.#stopping && this.#lanes.get(key) === current) {
        this.resume([tp]);
      }
    });
  }

  /** Batches of a partition handed off and not finished yet, the one being handled included (for diagnostics). */
  inFlight(tp: TopicPartition): number {
    return this.#lanes.get(tpKey(tp))?.batches ?? 0;
  }

  /**
   * Calls kafkajs, which throws while a crashed consumer restarts (no consumer group then). Its
   * restart reads from the group's committed offset, which a checkpoint only ever moves up to its
   * own offset, so a lost seek, pause or resume costs a re-read, never a record.
   */
  #kafkajs(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#logger.warn(`kafkajs ${what} failed; the consumer is restarting`, { error: ensureError(error) });
    }
  }

  async #onAssignment(assignment: Record<string, number[]>, listener: PartitionListener): Promise<void> {
    const next = new Map<string, TopicPartition>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) next.set(tpKey({ topic, partition }), { topic, partition });
    }
    const revoked = [...this.#owned].filter(([k]) => !next.has(k)).map(([, tp]) => tp);
    // A partition still assigned but given up since (its worker was fenced off while this member
    // stalled, and the group handed it back) is claimed again too.
    const added = [...next]
      .filter(([k, tp]) => !this.#owned.has(k) || listener.gaveUp?.(tp) === true)
      .map(([, tp]) => tp);
    this.#logger.info("assignment changed", {
      revoked: revoked.map(tpKey),
      assigned: added.map(tpKey),
      owned: [...next.keys()],
    });
    if (revoked.length > 0) {
      // Their lanes were dropped when the group was joined; their pauses are lifted, so that a
      // partition assigned again later starts afresh.
      this.resume(revoked);
      await listener.revoked(revoked);
    }
    this.#owned = next;
    if (added.length > 0) {
      const offsets = await listener.assigned(added);
      for (const tp of added) {
        const offset = offsets.get(tpKey(tp));
        if (offset !== undefined) this.seek(tp, offset);
      }
    }
  }

  seek(tp: TopicPartition, offset: number): void {
    const lane = this.#lanes.get(tpKey(tp));
    if (lane) lane.seeks++;
    this.#kafkajs(
      "seek",
      () => this.#consumer.seek({ topic: tp.topic, partition: tp.partition, offset: String(offset) }),
    );
  }

  async commit(tp: TopicPartition, nextOffset: number): Promise<void> {
    await this.#consumer.commitOffsets([{ topic: tp.topic, partition: tp.partition, offset: String(nextOffset) }]);
  }

  pause(tps: readonly TopicPartition[]): void {
    this.#kafkajs(
      "pause",
      () => this.#consumer.pause(tps.map((tp) => ({ topic: tp.topic, partitions: [tp.partition] }))),
    );
  }

  resume(tps: readonly TopicPartition[]): void {
    this.#kafkajs(
      "resume",
      () => this.#consumer.resume(tps.map((tp) => ({ topic: tp.topic, partitions: [tp.partition] }))),
    );
  }

  earliestOffset(tp: TopicPartition): Promise<number> {
    return this.#admin.earliestOffset(tp);
  }

  /** Skips the batches still queued, waits for those being handled, then leaves the group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#lanes.values()].map((lane) => lane.tail));
    await this.#consumer.disconnect();
    await this.#ready;
    this.#owned.clear();
    this.#lanes.clear();
    await this.#admin.close();
  }
}

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
    await this.#connect();
    const offsets = await this.#admin.fetchTopicOffsets(tp.topic);
    const found = offsets.find((o) => o.partition === tp.partition);
    if (!found) throw new LogUnavailableError(`no offsets for ${tp.topic}:${tp.partition}`);
    return Number(found.low);
  }

  async close(): Promise<void> {
    if (this.#connected) await this.#admin.disconnect();
  }
}
