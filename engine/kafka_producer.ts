/** Appends to Kafka through one idempotent kafkajs producer (the LogProducer of log.ts). */
import { type Kafka, Partitioners, type Producer } from "kafkajs";
import { LogUnavailableError } from "./errors.ts";
import type { AppendOptions, LogProducer, OutgoingRecord } from "./log.ts";
import { KAFKA_REQUEST_TIMEOUT_MS, type KafkaOptions } from "./kafka_client.ts";

/**
 * Most bytes of record values and keys coalesced into one produce request. Kafka refuses a
 * partition's record batch over `message.max.bytes` (1 MiB by default), and in the worst case all
 * records go to one partition; a single larger append is still sent, alone.
 */
const MAX_COALESCED_BYTES = 512 * 1024;

/**
 * How long the producer keeps waiting for kafkajs to finish with an abandoned request (every append
 * it carried already answered, i.e. rejected at its deadline) before replacing the kafkajs producer
 * and sending what is newer. Unbounded, that wait lasted as long as kafkajs's retry backoff (up to
 * about 30 s after an outage, forever if its promise never settled) and every append behind it,
 * the final checkpoints of a shutdown included, waited too: the 10 s shutdown deadline passed. The
 * price: a record of the abandoned request may land after newer ones (README, "A 503 means").
 */
export const ABANDONED_REQUEST_WAIT_MS = 3_000;

/** Most close() waits for the appends made before it, and for kafkajs's disconnect. */
export const CLOSE_TIMEOUT_MS = 3_000;

/**
 * What the broker's produce timeout stays below kafkajs's request timeout by (network and the
 * broker's own handling): given more, the broker could still hold a request kafkajs gave up on.
 */
export const BROKER_TIMEOUT_MARGIN_MS = 5_000;

/** An append waiting for its records to be acknowledged. */
interface PendingAppend {
  readonly records: readonly OutgoingRecord[];
  readonly bytes: number;
  /** performance.now() at which it is rejected unless acknowledged. */
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (error: LogUnavailableError) => void;
  settled: boolean;
  /** How many of its records were handed to requests so far (only the oldest append may be part-way). */
  sent: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** The next produce request: its records, and the appends it carries records of (in order). */
interface Request {
  readonly records: readonly OutgoingRecord[];
  /** Each carried append, with how many of its records are sent once this request is acknowledged. */
  readonly parts: readonly { readonly append: PendingAppend; readonly sentAfter: number }[];
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
 * to an idle producer goes out at once). Each append resolves only after the requests holding its
 * records were acknowledged, keeps its order relative to earlier appends, and is rejected with
 * LogUnavailableError if not acknowledged within its own deadline (AppendOptions.timeoutMs, else
 * publishTimeoutMs), which also bounds the broker's wait for replicas on each of its requests.
 *
 * A rejected append may still be stored: its request stays with kafkajs, which retries it, so a
 * 503 means "not acknowledged", not "not stored". Three rules keep such a late record from landing
 * after a record acknowledged after it: (1) once an append is rejected, none of its records that
 * were not yet in a request are sent (a big append goes out in several requests); (2) the deadline
 * counts the time spent connecting, and what was rejected meanwhile is not sent once connected;
 * (3) there is never more than one request in flight: the next one waits until kafkajs has
 * finished with the previous one, acknowledged or given up after its retries, even when every
 * append it carries was already rejected, for ABANDONED_REQUEST_WAIT_MS at most after that (then
 * the kafkajs producer is replaced, and what kafkajs still stores of the old request lands after
 * newer records). Appends behind it wait meanwhile, and are rejected if their own deadline comes
 * first. Not covered either: a request the broker received but had not answered when kafkajs gave
 * up on it (its request timeout) may still be stored after newer ones; nor, with several brokers,
 * produces of a failed multi-leader request still queued in kafkajs.
 */
export class KafkaProducer implements LogProducer {
  #producer: Producer;
  #connected: Promise<void> | null = null;
  #queue: PendingAppend[] = [];
  #inFlight: Promise<void> | null = null;
  /** Stops waiting for the request in flight if it is abandoned (every append it carried answered). */
  #abandonIfAnswered: (() => void) | null = null;
  /** Set by close(): new appends are refused. */
  #closing = false;
  /** Set when close() gave up waiting: nothing more is sent, and no producer is created again. */
  #closed = false;

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
   * Replaces the kafkajs producer after a failed connect or request. kafkajs may have given up on a
   * request the broker stored all the same; the next request on the same producer id would then be
   * out of sequence, which kafkajs never recovers from. A new producer id starts a clean sequence.
   * Usually called once kafkajs has finished with the old producer's request; for an abandoned
   * request (`unfinished`), the old producer is disconnected at once and again once kafkajs is done
   * with it (disconnected during a send, kafkajs reconnects it to retry).
   */
  #resetProducer(unfinished?: Promise<unknown>): void {
    const old = this.#producer;
    if (!this.#closed) this.#producer = this.#createProducer();
    this.#connected = null;
    const disconnect = () => {
      old.disconnect().catch((error) =>
        this.options.logger.warn("disconnecting a replaced Kafka producer failed", { error: String(error) })
      );
    };
    disconnect();
    unfinished?.then(disconnect, disconnect);
  }

  #connect(): Promise<void> {
    if (!this.#connected) {
      const producer = this.#producer;
      this.#connected = producer.connect().catch((error) => {
        if (producer === this.#producer) this.#connected = null;
        throw error;
      });
    }
    return this.#connected;
  }

  append(records: readonly OutgoingRecord[], options: AppendOptions = {}): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.#closing) return Promise.reject(new LogUnavailableError("the Kafka producer is closed"));
    const ms = options.timeoutMs ?? this.options.publishTimeoutMs;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const pending: PendingAppend = {
      records,
      bytes: recordBytes(records),
      deadline: performance.now() + ms,
      resolve,
      reject,
      settled: false,
      sent: 0,
    };
    pending.timer = setTimeout(() => {
      const queued = this.#queue.indexOf(pending);
      if (queued >= 0) this.#queue.splice(queued, 1);
      settle(
        pending,
        new LogUnavailableError(`append of ${records.length} record(s) not acknowledged within ${ms} ms`),
      );
      // Closing waits for no request whose appends are all answered.
      if (this.#closing) this.#abandonIfAnswered?.();
    }, ms);
    this.#queue.push(pending);
    this.#pump();
    return promise;
  }

  /** Starts sending the queued appends unless that is under way. */
  #pump(): void {
    if (this.#inFlight || this.#queue.length === 0 || this.#closed) return;
    this.#inFlight = this.#drain().finally(() => {
      this.#inFlight = null;
      this.#pump();
    });
  }

  /** Sends requests, one at a time, until no append is waiting. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      try {
        await this.#connect();
      } catch (error) {
        this.#fail(this.#nextRequest(), error);
        continue;
      }
      // Taken after the connect: what was rejected while connecting is not sent, and what was
      // appended meanwhile joins.
      const request = this.#nextRequest();
      if (request.parts.length === 0) continue;
      let unanswered: ReadonlyMap<string, string>;
      try {
        unanswered = await this.#sendRequest(request);
      } catch (error) {
        this.#fail(request, error, error instanceof AbandonedRequest ? error.unfinished : undefined);
        continue;
      }
      if (unanswered.size > 0) this.#refuseUnanswered(request, unanswered);
      for (const { append, sentAfter } of request.parts) {
        if (sentAfter === append.records.length) settle(append);
      }
    }
  }

  /** Rejects the appends a failed request (or connect) was for, and replaces the producer. */
  #fail(request: Request, error: unknown, unfinished?: Promise<unknown>): void {
    const failure = error instanceof LogUnavailableError ? error : new LogUnavailableError(
      `Kafka did not acknowledge the append: ${(error as Error).message}`,
      { cause: error },
    );
    for (const { append } of request.parts) {
      settle(append, failure);
      const queued = this.#queue.indexOf(append);
      if (queued >= 0) this.#queue.splice(queued, 1);
    }
    this.#resetProducer(unfinished);
  }

  /**
   * Rejects the appends of a request with records for partitions kafkajs sent nothing for (`unanswered`, keyed by
   * `topic:partition`), and replaces the producer, whose next connect reads the topics' partitions afresh. kafkajs
   * leaves a partition its metadata does not list out of its requests and resolves the send all the same: such records
   * were acknowledged without being stored (a fact bundle for a partition of a topic created again with fewer, or one
   * `dlq replay` sends back to its partition, then recorded as replayed). The request's other appends were stored.
   */
  #refuseUnanswered(request: Request, unanswered: ReadonlyMap<string, string>): void {
    const refused = request.parts.filter(({ append }) =>
      append.records.some((r) => r.partition !== undefined && unanswered.has(`${r.topic}:${r.partition}`))
    );
    const which = [...unanswered.values()].join(", ");
    const error = new LogUnavailableError(
      `Kafka has no ${which} as far as the producer knows; nothing was appended there`,
    );
    this.#fail({ records: [], parts: refused }, error);
  }

  /**
   * Takes the next request's records off the queue, in order, leaving out appends already settled:
   * the rest of the oldest append, in requests of at most MAX_COALESCED_BYTES (a checkpoint after a
   * long catch-up can emit megabytes, and the broker refuses a partition batch over
   * `message.max.bytes`; a single larger record still goes, alone), then whole appends while they
   * fit.
   */
  #nextRequest(): Request {
    this.#queue = this.#queue.filter((p) => !p.settled);
    const records: OutgoingRecord[] = [];
    const parts: { append: PendingAppend; sentAfter: number }[] = [];
    let bytes = 0;
    for (const append of this.#queue) {
      const whole = append.sent === 0 && bytes + append.bytes <= MAX_COALESCED_BYTES;
      if (!whole && parts.length > 0) break;
      let next = append.sent;
      if (whole) {
        for (const record of append.records) records.push(record);
        next = append.records.length;
        bytes += append.bytes;
      } else {
        while (next < append.records.length) {
          const size = recordBytes([append.records[next]]);
          if (records.length > 0 && bytes + size > MAX_COALESCED_BYTES) break;
          records.push(append.records[next++]);
          bytes += size;
        }
      }
      append.sent = next;
      parts.push({ append, sentAfter: next });
      if (next < append.records.length) break;
    }
    this.#queue = this.#queue.slice(parts.filter((p) => p.sentAfter === p.append.records.length).length);
    return { records, parts };
  }

  /**
   * Sends one request and waits for kafkajs to be done with it, past every deadline if need be, but
   * once every append it carries is answered, for ABANDONED_REQUEST_WAIT_MS at most (none once
   * close() is called); then throws AbandonedRequest. The broker may wait for replicas until the
   * latest deadline among the appends it carries, and less than kafkajs waits for its answer. Returns the partitions
   * (`topic:partition`, and a label) records were given for that the answer does not name: kafkajs sent nothing there.
   */
  async #sendRequest({ records, parts }: Request): Promise<ReadonlyMap<string, string>> {
    const latest = Math.max(...parts.map((p) => p.append.deadline));
    const timeout = Math.max(
      1,
      Math.min(Math.ceil(latest - performance.now()), KAFKA_REQUEST_TIMEOUT_MS - BROKER_TIMEOUT_MARGIN_MS),
    );
    const byTopic = new Map<string, OutgoingRecord[]>();
    for (const record of records) {
      const list = byTopic.get(record.topic) ?? [];
      list.push(record);
      byTopic.set(record.topic, list);
    }
    const sending = this.#producer.sendBatch({
      acks: -1,
      timeout,
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
    const abandoned = Promise.withResolvers<void>();
    const abandonIfAnswered = () => {
      if (parts.every((p) => p.append.settled)) abandoned.resolve();
    };
    this.#abandonIfAnswered = abandonIfAnswered;
    // Every append it carries is answered at the latest deadline among them.
    const timer = setTimeout(abandonIfAnswered, Math.max(0, latest - performance.now()) + ABANDONED_REQUEST_WAIT_MS);
    try {
      const answered = await Promise.race([sending, abandoned.promise.then((): typeof ABANDONED => ABANDONED)]);
      if (answered === ABANDONED) {
        sending.catch(() => {});
        throw new AbandonedRequest(sending);
      }
      // Bundles of facts (and records `dlq replay` sends back) name their partition; other records are placed by kafkajs.
      let named: Set<string> | undefined;
      const unanswered = new Map<string, string>();
      for (const r of records) {
        if (r.partition === undefined) continue;
        named ??= new Set(answered.map((m) => `${m.topicName}:${m.partition}`));
        const key = `${r.topic}:${r.partition}`;
        if (!named.has(key)) unanswered.set(key, `partition ${r.partition} of ${r.topic}`);
      }
      return unanswered;
    } finally {
      clearTimeout(timer);
      this.#abandonIfAnswered = null;
    }
  }

  /**
   * Waits for the appends already made (and for kafkajs to finish with their requests, except one
   * already abandoned), then disconnects; all within CLOSE_TIMEOUT_MS.
   */
  async close(): Promise<void> {
    this.#closing = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)));
    let late = false;
    deadline.then(() => (late = true));
    try {
      this.#abandonIfAnswered?.();
      while (this.#inFlight && !late) {
        await Promise.race([this.#inFlight, deadline]);
        this.#abandonIfAnswered?.();
      }
      if (late) {
        // Given up: nothing more is sent or connected, what is still queued is answered, and the
        // producer is disconnected now and again once kafkajs has finished with its request.
        this.#closed = true;
        for (const append of this.#queue) settle(append, new LogUnavailableError("the Kafka producer was closed"));
        this.#queue = [];
        const producer = this.#producer;
        this.#inFlight?.finally(() => producer.disconnect().catch(() => {}));
      }
      const disconnecting = this.#producer.disconnect();
      disconnecting.catch(() => {});
      await Promise.race([disconnecting, deadline]);
    } finally {
      this.#closed = true;
      clearTimeout(timer);
    }
    if (late) this.options.logger.warn("Kafka producer closed before it finished", { timeoutMs: CLOSE_TIMEOUT_MS });
  }
}

/** What #sendRequest's wait ends with when it stops waiting for kafkajs. */
const ABANDONED = Symbol("abandoned");

/** A request still with kafkajs after every append it carried was answered, no longer waited for. */
class AbandonedRequest extends LogUnavailableError {
  constructor(readonly unfinished: Promise<unknown>) {
    super("abandoned a produce request every append of which was already answered");
  }
}
