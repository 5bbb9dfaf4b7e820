/** Appends to Kafka through one idempotent kafkajs producer (the LogProducer of log.ts). */
import { type Kafka, Partitioners, type Producer } from "kafkajs";
import { LogUnavailableError } from "./errors.ts";
import type { AppendOptions, LogProducer, OutgoingRecord } from "./log.ts";
import type { KafkaOptions } from "./kafka_client.ts";

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
