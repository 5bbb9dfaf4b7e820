/** A Kafka consumer-group member (the LogConsumer of log.ts), delivering each partition's batches in a lane of its own. */
import type { Consumer, EachBatchPayload, Kafka } from "kafkajs";
import { ensureError } from "./errors.ts";
import type { LogConsumer, LogRecord, PartitionListener, RecordBatch, TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import { AssignmentConfirmation } from "./assignment_confirmation.ts";
import { confirmationStaleAfterMs, DEFAULT_SESSION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS } from "./kafka_session.ts";
import { KafkaAdmin } from "./kafka_admin.ts";
import { consumerForLeaving, leaveFromAside } from "./kafka_group_leave.ts";
import { settledWithin } from "./settled_within.ts";

/** Consumer-group settings. */
export interface KafkaConsumerOptions {
  readonly groupId: string;
  /** How many partitions are handled at the same time. */
  readonly partitionsConsumedConcurrently?: number;
  /** How long the group waits for a silent member before handing its partitions to others (KAFKA_SESSION_TIMEOUT_MS). */
  readonly sessionTimeoutMs?: number;
  /** How often to heartbeat the group (HEARTBEAT_INTERVAL_MS unless a test needs heartbeats closer together). */
  readonly heartbeatIntervalMs?: number;
  /** Longest time the broker holds a fetch open when there is nothing new; bounds idle latency. */
  readonly maxWaitTimeMs?: number;
}

/** kafkajs's retries of a consumer's failed request (its default when no `retry` is given). */
const CONSUMER_RETRIES = 5;

const CONSUMER_DEFAULTS = {
  partitionsConsumedConcurrently: 12,
  sessionTimeoutMs: DEFAULT_SESSION_TIMEOUT_MS,
  maxWaitTimeMs: 100,
} as const;

/** The headers of a record that has none (most of them), shared: an object and an entries array per record before. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function toLogRecord(topic: string, partition: number, m: EachBatchPayload["batch"]["messages"][number]): LogRecord {
  let headers: Record<string, string> | undefined;
  const given = m.headers;
  for (const name in given) {
    const value = given[name];
    if (Object.hasOwn(given, name) && value !== undefined) (headers ??= {})[name] = String(value);
  }
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key ? m.key.toString("utf8") : null,
    value: m.value ? new Uint8Array(m.value.buffer, m.value.byteOffset, m.value.byteLength) : null,
    headers: headers ?? NO_HEADERS,
    timestamp: Number(m.timestamp),
  };
}

/** The heartbeat given with a batch kafkajs did not hand to eachBatch (it heartbeats itself after it). */
const noHeartbeat = (): Promise<void> => Promise.resolve();

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
 * Most stop() waits for the batches being handled, then kafkajs to leave the group and disconnect, together. With the broker unreachable its disconnect waits
 * for the fetch in flight, which retries for about 25 s: a stop then passed main.ts's 10 s deadline (exit code 1).
 * The group drops a member that could not leave after its session timeout, as it drops a crashed one.
 */
export const LEAVE_TIMEOUT_MS = 2_000;
/**
 * Of LEAVE_TIMEOUT_MS, the most stop() waits for the batches being handled before it leaves the group anyway: a batch
 * waiting on a database that stopped answering took the whole of it, and the group was never left (its partitions then
 * waited for the session timeout). What is still handled after the leave is fenced off by the next owner's claim.
 */
export const QUIESCE_TIMEOUT_MS = 500;

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
  /** Assignments queued on `#ready` and not handled yet: while there are, a batch waits for them (see #untilReady). */
  #assignmentsPending = 0;
  #logger: Logger;
  readonly #lanes = new Map<string, Lane>();
  #stopping = false;
  /** Asks the broker for a partition's log start offset; connected on first use. */
  #admin: KafkaAdmin;
  /** Whether the group has confirmed the assignment the listener holds (for claiming a partition again). */
  readonly #confirmation: AssignmentConfirmation;
  /** When kafkajs sent the latest fetch the broker answered (records or none): see LogConsumer.lastReadAt. */
  #lastReadAt = Date.now();
  /** The member id of the last join: a new one means the group dropped this member in between. */
  #memberId: string | undefined;
  /**
   * The member id of the join in progress: the last one once a rebalance began, then that of each JoinGroup sent (kafkajs
   * also joins again on its own, announcing no rebalance), or the one the broker handed out to a new member.
   */
  #joiningAs: string | undefined;
  /** Set when stop() leaves the group: kafkajs's consumer may not join again (see kafka_group_leave.ts). */
  #leaving = false;
  readonly #kafka: Kafka;
  /** Set when kafkajs stopped the consumer after an error and will not restart it. */
  #failure: Error | undefined;
  /** Settled with `#failure` when it is set: see LogConsumer.failed. */
  readonly #failed = Promise.withResolvers<Error>();
  /** Per partition, the commit kafkajs is making (see commit()). */
  readonly #commitsInFlight = new Map<string, Promise<void>>();
  /** Per partition, the commit to make once the one in flight settles: the latest offset asked for. */
  readonly #commitsWaiting = new Map<string, { offset: number; done: Promise<void> }>();

  constructor(kafka: Kafka, private readonly options: KafkaConsumerOptions, logger: Logger) {
    this.#logger = logger.child({ component: "kafka-consumer" });
    this.#kafka = kafka;
    this.#admin = new KafkaAdmin(kafka);
    const sessionTimeoutMs = options.sessionTimeoutMs ?? CONSUMER_DEFAULTS.sessionTimeoutMs;
    const heartbeatMs = options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.#confirmation = new AssignmentConfirmation(confirmationStaleAfterMs(sessionTimeoutMs, heartbeatMs));
    this.#consumer = consumerForLeaving(kafka, {
      groupId: options.groupId,
      sessionTimeout: sessionTimeoutMs,
      heartbeatInterval: heartbeatMs,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? CONSUMER_DEFAULTS.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      // kafkajs's default for a consumer (5 retries), and no restart once stopping: a join the stop cut short crashes
      // the consumer, which kafkajs then restarted, joining the group again after the stop.
      retry: { retries: CONSUMER_RETRIES, restartOnFailure: () => Promise.resolve(!this.#stopping) },
    }, {
      refused: () => this.#leaving,
      // A new member's ("") is handed out by the broker next (memberIdAssigned); one it dropped is no longer to leave.
      joinSent: (memberId) => this.#joiningAs = memberId === "" ? undefined : memberId,
      // A first join (or one after a crash) is told its member id before it waits for the group.
      memberIdAssigned: (memberId) => this.#joiningAs = memberId,
    });
  }

  async start(topics: readonly string[], listener: PartitionListener): Promise<void> {
    const consumer = this.#consumer;
    this.#stopping = false;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assignment = event.payload.memberAssignment as Record<string, number[]>;
      // A new member id: the group dropped this member (it stalled past the session timeout, or kafkajs
      // restarted the consumer) and may have handed its partitions to others meanwhile, who handled and
      // checkpointed records since. What this instance holds of them is stale even where the new
      // assignment lists them again: they are all revoked and claimed afresh.
      const memberId = String(event.payload.memberId);
      this.#joiningAs = undefined;
      const rejoined = this.#memberId !== undefined && memberId !== this.#memberId;
      this.#memberId = memberId;
      // Batches queued for partitions this member no longer has are dropped at once, not after the
      // assignments queued before this one: their new owner may be claiming them already.
      const kept = new Set(
        rejoined
          ? []
          : Object.entries(assignment).flatMap(([topic, partitions]) =>
            partitions.map((partition) => tpKey({ topic, partition }))
          ),
      );
      for (const key of [...this.#lanes.keys()]) if (!kept.has(key)) this.#lanes.delete(key);
      this.#confirmation.assignmentReceived();
      this.#assignmentsPending++;
      this.#ready = this.#ready.then(() => this.#onAssignment(assignment, listener, rejoined)).catch((error) => {
        this.#logger.error("handling a new assignment failed", { error });
      }).finally(() => {
        this.#assignmentsPending--;
        this.#confirmation.assignmentHandled();
      });
    });
    consumer.on(consumer.events.REBALANCING, () => {
      this.#confirmation.rebalancing();
      // kafkajs joins again with the member id it has.
      this.#joiningAs = this.#memberId;
    });
    consumer.on(
      consumer.events.HEARTBEAT,
      (event) => this.#confirmation.heartbeat(Number(event.payload.groupGenerationId)),
    );
    // A fetch the broker answered, with records or without, read everything appended before it was
    // sent (engine/log.ts, lastReadAt). kafkajs's FETCH event is also emitted after a failed fetch.
    consumer.on(consumer.events.REQUEST, (event) => {
      const { apiName, sentAt } = event.payload as { apiName: string; sentAt: number };
      if (apiName === "Fetch" && sentAt > this.#lastReadAt) this.#lastReadAt = sentAt;
    });
    // kafkajs resolves a batch of only records read_committed leaves out (transaction markers, aborted
    // transactions) itself and never hands it to eachBatch: the listener gets it empty, or a partition whose
    // tail is such records would never reach its end offset (and hold the analytics clock back for good).
    consumer.on(consumer.events.START_BATCH_PROCESS, (event) => {
      const { topic, partition, batchSize, firstOffset, lastOffset, highWatermark } = event.payload;
      if (batchSize > 0 || firstOffset === null) return;
      const batch = { topic, partition, records: [], highWatermark: Number(highWatermark) };
      const covered = { ...batch, from: Number(firstOffset), end: Number(lastOffset) + 1 };
      // After the assignment being handled, as eachBatch's batches; a stale one moves nothing (see RecordBatch).
      void this.#ready.then(() => {
        if (!this.#stopping && this.#owned.has(tpKey(covered))) this.#handOff(listener, covered, noHeartbeat);
      });
    });
    consumer.on(consumer.events.CRASH, (event) => {
      const { error, restart } = event.payload;
      // Out of the group now: the heartbeats answered before the crash no longer confirm its assignment.
      this.#confirmation.left();
      this.#joiningAs = undefined;
      // Stopping, it is no failure: the stop cut a join short, and kafkajs does not restart it (restartOnFailure).
      if (this.#stopping) {
        this.#logger.info("consumer ended while stopping", { error });
        return;
      }
      if (!restart && !this.#failure) {
        this.#failure = ensureError(error);
        this.#failed.resolve(this.#failure);
      }
      this.#logger.error(
        restart ? "consumer crashed; kafkajs restarts it" : "consumer crashed for good; consuming nothing",
        {
          error,
          restart,
        },
      );
    });
    // A stop while connecting or subscribing (a signal during start-up) must not be followed by a join.
    await consumer.connect();
    if (this.#stopping) return;
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    if (this.#stopping) return;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ??
        CONSUMER_DEFAULTS.partitionsConsumedConcurrently,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isStale, isRunning }) => {
        await this.#untilReady(heartbeat);
        const { topic, partition } = batch;
        if (this.#stopping) {
          // Unresolved, it would be fetched again at once, and again, until the group is left (the final checkpoints
          // run meanwhile): the partition is fetched no more.
          this.pause([{ topic, partition }]);
          return;
        }
        if (!isRunning() || isStale() || !this.#owned.has(tpKey(batch))) return;
        const records = batch.messages.map((m) => toLogRecord(topic, partition, m));
        if (records.length === 0) return;
        // kafkajs's position moves on at once; where a partition resumes after a crash is the
        // checkpoint's business, and a rewind seeks. What the batch covers includes the records
        // read_committed leaves out (transaction markers, aborted transactions): see RecordBatch.
        const last = batch.lastOffset();
        resolveOffset(last);
        const from = Number(batch.firstOffset() ?? records[0].offset);
        const highWatermark = Number(batch.highWatermark);
        this.#handOff(listener, { topic, partition, records, highWatermark, from, end: Number(last) + 1 }, heartbeat);
      },
    });
  }

  /**
   * Waits for the assignment being handled, heartbeating every heartbeat interval meanwhile. kafkajs heartbeats only
   * from its fetch loop (after a fetch that found nothing, after each batch) and fetches again only once every batch of
   * its last fetch is handled: a revoked partition's final checkpoint behind a slow batch held the batches fetched for
   * the other partitions, and with them every heartbeat, and the group dropped the member past its session timeout
   * (tests/integration/kafka_consumer_test.ts). A heartbeat that finds the group rebalancing throws, and kafkajs, the
   * batch unresolved, joins again as after its own heartbeat.
   */
  async #untilReady(heartbeat: () => Promise<void>): Promise<void> {
    if (this.#assignmentsPending === 0) return;
    const ready = this.#ready.then(() => true);
    const intervalMs = this.options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const interval = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), intervalMs));
      const handled = await Promise.race([ready, interval]);
      clearTimeout(timer);
      if (handled) return;
      if (!this.#stopping) await heartbeat();
    }
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
          offset: batch.from ?? batch.records[0].offset,
          error: ensureError(error),
          delay,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (!this.#stopping && this.#lanes.get(key) === current) this.seek(tp, batch.from ?? batch.records[0].offset);
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

  /** Hands the listener what the new assignment revokes and adds; `rejoined`: every partition held is revoked. */
  async #onAssignment(
    assignment: Record<string, number[]>,
    listener: PartitionListener,
    rejoined: boolean,
  ): Promise<void> {
    const next = new Map<string, TopicPartition>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) next.set(tpKey({ topic, partition }), { topic, partition });
    }
    const revoked = [...this.#owned].filter(([k]) => rejoined || !next.has(k)).map(([, tp]) => tp);
    // A partition still assigned but given up since (its worker was fenced off while this member
    // stalled, and the group handed it back) is claimed again too.
    const added = [...next]
      .filter(([k, tp]) => rejoined || !this.#owned.has(k) || listener.gaveUp?.(tp) === true)
      .map(([, tp]) => tp);
    if (rejoined && this.#owned.size > 0) {
      this.#logger.warn("the group dropped this member and it joined again; its partitions are claimed afresh", {
        held: [...this.#owned.keys()],
      });
    }
    if (revoked.length === 0 && added.length === 0) {
      // A rebalance that moved nothing of this member's (another member joined and took nothing,
      // or kafkajs rejoined for new topic metadata): no change to announce at info.
      this.#logger.debug("assignment unchanged", { owned: [...next.keys()] });
    } else {
      this.#logger.info("assignment changed", {
        revoked: revoked.map(tpKey),
        assigned: added.map(tpKey),
        owned: [...next.keys()],
      });
    }
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

  /**
   * Commits one partition's offsets one at a time, the latest asked for once the one in flight settles (those asked
   * for meanwhile are skipped). kafkajs retries a failed commit for about 25 s, so commits made while the broker or the
   * group's coordinator was briefly away landed in any order, and the group's committed offset could stay behind the
   * partition's checkpoint (an idle partition commits no more) for tools that read the group's lag.
   */
  commit(tp: TopicPartition, nextOffset: number): Promise<void> {
    const key = tpKey(tp);
    const waiting = this.#commitsWaiting.get(key);
    if (waiting) {
      waiting.offset = nextOffset;
      return waiting.done;
    }
    const next = { offset: nextOffset, done: Promise.resolve() };
    this.#commitsWaiting.set(key, next);
    const previous = this.#commitsInFlight.get(key) ?? Promise.resolve();
    next.done = previous.catch(() => {}).then(() => {
      this.#commitsWaiting.delete(key);
      const committing = this.#consumer.commitOffsets([
        { topic: tp.topic, partition: tp.partition, offset: String(next.offset) },
      ]);
      this.#commitsInFlight.set(key, committing);
      return committing.finally(() => {
        if (this.#commitsInFlight.get(key) === committing) this.#commitsInFlight.delete(key);
      });
    });
    return next.done;
  }

  lastReadAt(): number {
    return this.#lastReadAt;
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

  endOffset(tp: TopicPartition): Promise<number> {
    return this.#admin.endOffset(tp);
  }

  endOffsets(topic: string): Promise<ReadonlyMap<number, number>> {
    return this.#admin.endOffsets(topic);
  }

  committedOffset(tp: TopicPartition): Promise<number | undefined> {
    return this.#admin.committedOffset(this.options.groupId, tp);
  }

  failure(): Error | undefined {
    return this.#failure;
  }

  failed(): Promise<Error> {
    return this.#failed.promise;
  }

  assignmentConfirmedSince(since: number): boolean {
    return this.#confirmation.confirmedSince(since);
  }

  /** Skips the batches still queued and those fetched from now on, and waits for those being handled. */
  async quiesce(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#lanes.values()].map((lane) => lane.tail));
  }

  /** Quiesces (QUIESCE_TIMEOUT_MS at most), then leaves the group (LEAVE_TIMEOUT_MS at most for both). */
  async stop(): Promise<void> {
    // The batches being handled and the assignment being handled wait for the database: one that stopped answering
    // held the stop, which never left the group, until main.ts's deadline ended the process.
    const deadline = Date.now() + LEAVE_TIMEOUT_MS;
    const remaining = () => Math.max(0, deadline - Date.now());
    await settledWithin(this.quiesce(), QUIESCE_TIMEOUT_MS);
    this.#leaving = true;
    // kafkajs leaves only once its join in progress ends, which waits for every member of the group (one that stopped
    // answering holds it until its session timeout): the member is left from another connection, or the process
    // exited still in the join, and the group completed the join with it and waited for it again.
    const joiningAs = this.#joiningAs;
    const leaving = Promise.all([
      this.#consumer.disconnect(),
      joiningAs &&
      leaveFromAside(this.#kafka, this.options.groupId, joiningAs).catch((error) =>
        this.#logger.warn("leaving the group during its join failed", { error: ensureError(error) })
      ),
    ]);
    if (!await settledWithin(leaving, remaining())) {
      this.#logger.warn("leaving the group did not finish in time; stopping anyway", { timeoutMs: LEAVE_TIMEOUT_MS });
    }
    await settledWithin(this.#ready, remaining());
    this.#owned.clear();
    this.#lanes.clear();
    await this.#admin.close();
  }
}
