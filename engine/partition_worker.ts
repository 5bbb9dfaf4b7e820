/**
 * One partition's actors. Messages of one key run one at a time in offset order; different keys
 * run concurrently. A checkpoint publishes the outputs the handled messages caused, then writes
 * the dirty states, their timers, the partition's next offset and the query projections (stored
 * outputs included) in one transaction, fenced by the owner epoch.
 *
 * Time: the partition clock is the largest event time seen so far; when the partition has been
 * idle for `idleClockMs` of wall time, it advances to wall time less that grace, so timers fire
 * even if no other event arrives. Each checkpoint stores the clock with the offset, and a new
 * owner or a rewind resumes it from there, so a late record after a restart sees the same
 * `ctx.now()` as without the restart. Before a message is handled, its key's timers that are due at
 * the clock of that message fire first; so the outcome does not depend on batch boundaries. An idle
 * advance comes from the wall, not from the log, so a replay could not repeat it: it is checkpointed
 * before anything sees it (a timer firing from it, or the next record handled at that clock). A partition fed
 * through other partitions' checkpoints (analytics) follows the wall no further than they have published; those
 * partitions (events) publish their clock to it after their facts, as watermark records (WorkerDeps.watermarks).
 */
import type { SourceWatermark } from "../actors/facts.ts";
import type { AnyActorLogic, Emitted } from "./actor.ts";
import type { CheckpointStore, Claim, CommitResult, StoredActor } from "./checkpoint.ts";
import type { Topics } from "./config.ts";
import { deadLetter } from "./dead_letter.ts";
import { EngineError, ensureError, LogUnavailableError, TerminalError, ValidationError } from "./errors.ts";
import type { LogConsumer, LogProducer, LogRecord, OutgoingRecord, RecordBatch, TopicPartition } from "./log.ts";
import { type Instrumentation, noInstrumentation } from "./instrumentation.ts";
import type { Logger } from "./logger.ts";
import {
  type Alert,
  alertSchema,
  type AnalyticsHistory,
  analyticsHistorySchema,
  productMinuteSchema,
  type Recommendation,
  recommendationSchema,
} from "./outputs.ts";
import { expandBundle, isBundle, OutputBundler } from "./fact_bundle.ts";
import { type LruCut, NO_CUT } from "./lru_cut.ts";
import { RecordContext, TimerContext } from "./handler_context.ts";
import { partitionForKey } from "./partitioner.ts";
import { ProductMinuteDeltas } from "./product_minutes.ts";
import { safeParseFast } from "./schema_check.ts";
import { type ClockSource, sourceWatermark } from "./source_watermark.ts";
import { TimerTable } from "./timer_table.ts";
import type { StatePacker } from "./state_packer.ts";
import { splitParts, type WrittenParts } from "./persisted_parts.ts";

/** What a worker needs from the engine. */
export interface WorkerDeps {
  readonly store: CheckpointStore;
  readonly producer: LogProducer;
  readonly consumer: LogConsumer;
  readonly logic: AnyActorLogic;
  readonly topics: Topics;
  readonly groupId: string;
  /** This instance's id, recorded as the partition's owner. */
  readonly owner: string;
  readonly logger: Logger;
  /** Checkpoint after this many handled messages even if the interval has not elapsed. */
  readonly checkpointMaxMessages: number;
  /** Wall time without records after which the partition clock follows wall time (less this much). */
  readonly idleClockMs?: number;
  /** Actors whose last record is older than this (log append time) are deleted; 0 disables. */
  readonly stateTtlMs?: number;
  /** Delay before retrying after a transient failure; doubles up to the maximum. */
  readonly retryBackoffMs?: { readonly initial: number; readonly max: number };
  /** Wall clock, injectable for tests. */
  readonly wallClock?: () => number;
  /** Where the worker reports what it does (metrics). */
  readonly instrumentation?: Instrumentation;
  /** Internal topics whose records a checkpoint publishes as bundles (engine/fact_bundle.ts) → their partition counts. */
  readonly bundledTopics?: ReadonlyMap<string, number>;
  /**
   * Consumed topics → their partition counts. A record whose key the engine's partitioner (Kafka's
   * default, murmur2) places on another partition is dead-lettered: that key's actor lives there, and
   * two partitions checkpointing one actor would overwrite each other's updates.
   */
  readonly partitionCounts?: ReadonlyMap<string, number>;
  /** Packs idle actors (engine/state_packer.ts); shared by the runtime's partitions for its key table. */
  readonly packer?: StatePacker;
  /** Set for a partition fed only through the checkpoints of `source`'s partitions: its idle clock waits for them. */
  readonly source?: ClockSource;
  /**
   * Set for a partition whose facts feed such a partition (an `events` partition): its checkpoints publish its clock
   * after its facts, as a watermark record (actors/facts.ts SourceWatermark) with this key to this topic, at most once
   * a minute of its clock, so that the fed partition evaluates a minute only once every source has published up to it.
   */
  readonly watermarks?: { readonly topic: string; readonly key: string; readonly partitions: number };
  /**
   * Keys whose due timers fire together at most (the partition's share of MAX_ACTORS); absent: all at once. Between such
   * slices the fired actors are checkpointed, so that a clock passing many deadlines at once does not load them all.
   */
  readonly timerSlice?: () => number;
  /** How many actors the instance holds beyond MAX_ACTORS (0 or less: none): those a timer slice loaded go again. */
  readonly actorExcess?: () => number;
}

interface Cell {
  /** The live state; undefined while the actor is packed. */
  state: unknown;
  /** The packed persisted form of an idle, checkpointed actor (then `state` is undefined). */
  packed: string | undefined;
  dirty: boolean;
  /** Append time (epoch ms) of the key's latest record, for TTL. */
  lastActiveAt: number;
  /** Wall time of the last activation, for idle passivation. */
  usedAt: number;
  /** With a parts field (ActorLogic.persistedParts): its elements as the last checkpoint wrote them; absent: not known. */
  parts?: WrittenParts;
  /** Packed with `parts` known: the store holds the packed form's elements, taken as written again once unpacked. */
  packedParts?: boolean;
}

/**
 * An actor in its initial state that no message has changed and nothing has stored: it is not an actor yet for queries
 * or checkpoints. A stored one always has an activity time (its records' append times are after 1970).
 */
function untouched(cell: Cell): boolean {
  return !cell.dirty && cell.lastActiveAt === 0 && cell.packed === undefined;
}

interface Item {
  readonly record: LogRecord;
  readonly message: unknown;
  /** The partition clock at this record. */
  readonly clock: number;
  /** The message's event time (epoch ms; 0 or NaN if it has none). */
  readonly at: number;
}

/** Retry delays after transient failures (doubling from `initial` up to `max`), unless WorkerDeps set others. */
export const DEFAULT_BACKOFF = { initial: 100, max: 5_000 };
const DEFAULT_IDLE_CLOCK_MS = 10_000;
/** A source partition publishes its clock once per minute of it: evaluations are per minute. */
const WATERMARK_MS = 60_000;

/** A timer handler that keeps re-arming an already-due timer is cut off after this many firings (per key and call). */
export const MAX_FIRINGS_PER_KEY = 1_000;
/** Outputs of a checkpoint may be megabytes after a catch-up; they get longer than an HTTP request. */
const OUTPUT_APPEND_TIMEOUT_MS = 60_000;
/**
 * Once the partition is being given up (revoked, or the engine stopping), an append gets this long, counted from then
 * or from its own start if later: with the broker down, a checkpoint's append (OUTPUT_APPEND_TIMEOUT_MS) held a stop
 * for a minute, past main.ts's 10 s deadline. After one was cut, the partition's later appends fail at once (the log is
 * not answering). The next owner resumes from the checkpoint before, and publishes the same outputs.
 */
export const LEAVING_APPEND_MS = 2_000;
/** How often a partition's stored actors are swept for expiry. */
const EXPIRY_SWEEP_MS = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An output's kind for the metrics: an alert's type or an event's, else a fact's kind (`product_viewed`, `abandonment`). */
function outputSubtype(value: unknown): string {
  const { type, fact } = (value ?? {}) as { type?: unknown; fact?: unknown };
  return typeof type === "string" ? type : typeof fact === "string" ? fact : "";
}

/** Counts by two labels, nested: no `first\u0000second` string to build and hash per output (two or more per event). */
type Tallies = Map<string, Map<string, number>>;

/** Adds one to the count of (`first`, `second`). */
function tally(counts: Tallies, first: string, second: string): void {
  let inner = counts.get(first);
  if (inner === undefined) counts.set(first, inner = new Map());
  inner.set(second, (inner.get(second) ?? 0) + 1);
}

/** The actors and progress of one owned partition. */
export class PartitionWorker {
  readonly #tp: TopicPartition;
  readonly #deps: WorkerDeps;
  readonly #log: Logger;
  readonly #wall: () => number;
  readonly #events: Instrumentation;
  /** Actors in memory, least recently used first. */
  readonly #cells = new Map<string, Cell>();
  /** Pending timers of every actor of the partition, in memory or not: key → name → deadline. */
  readonly #timers = new TimerTable();
  /**
   * Keys expired in memory (or found past the TTL in the store), deleted from the store by the next checkpoint that
   * commits. Kept across rewinds (the delete is idempotent): until that commit the store still holds the old state,
   * and a key in here activates afresh instead of loading it.
   */
  readonly #expired = new Set<string>();
  #epoch: number;
  /** Next offset to handle. */
  #position: number;
  /** Offsets before this were found deleted and reported once: a rewind that meets the same gap again counts nothing. */
  #skipReportedTo = 0;
  /** Next offset as recorded in the last committed checkpoint. */
  #checkpointed: number;
  /** The partition clock recorded with `#checkpointed`. */
  #checkpointedClock: number;
  /** Set by a rewind until the position (if uncertain) and the timer index are re-read from the store. */
  #needsResync = false;
  /** A commit failed without saying whether it landed: `#checkpointed` may be behind the store. */
  #commitUncertain = false;
  /** Outputs to publish before the next checkpoint commits, bundled as they come. */
  readonly #outputs: OutputBundler;
  #alerts: Alert[] = [];
  #recommendations: Recommendation[] = [];
  #analyticsHistory: AnalyticsHistory[] = [];
  /** Product minute deltas since the last checkpoint, added up (committed with the offset covering them). */
  readonly #productMinutes = new ProductMinuteDeltas();
  #sinceCheckpoint = 0;
  /**
   * Outputs and dead letters queued since the last checkpoint, by topic and subtype or topic and code: reported once
   * the log acknowledges the checkpoint's append; a rewind before that drops them with the outputs.
   */
  readonly #outputCounts: Tallies = new Map();
  readonly #deadLetterCounts: Tallies = new Map();
  #clock: number;
  /** The clock was advanced by wall time (idle) since the last checkpoint, which does not hold it yet. */
  #clockAhead = false;
  /** Wall time records were last delivered. */
  #lastRecordAt: number;
  /** The clock of this partition's last watermark queued since its claim or rewind (null: empty; see WorkerDeps.watermarks). */
  #watermarkQueued: number | null | undefined;
  /**
   * A fed partition's clock at its latest idle advance: its sources have published so far (-Infinity: none). Stored with
   * the clock by each checkpoint, and restored with it by a rewind or a new owner's claim, so that a replay releases what
   * the first run did.
   */
  #sourcesPublished: number;
  /** `#sourcesPublished` as of the last committed checkpoint. */
  #checkpointedSourcesPublished: number;
  /** Times this partition's log started again below its checkpoint (stored at once): named by output ids above 0. */
  #logGeneration: number;
  /**
   * Wall time spent since then in this worker's own steps, during which no record could be delivered:
   * the partition is idle only after `idleClockMs` of listening without records, not of being stuck.
   */
  #busySinceRecord = 0;
  /** Append time of the latest record handled: how far the log has come, for the TTL (see `#ttlNow`). */
  #logTime = 0;
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Set once the partition is being given up (revoked, or the engine stopping): failures are no longer waited out. */
  #leaving = false;
  /** Aborted when the partition starts being given up: cuts short an append in flight (see LEAVING_APPEND_MS). */
  readonly #leavingNow = new AbortController();
  /** An append was cut short while the partition was being given up: the log is not answering, later ones fail at once. */
  #leavingAppendCut = false;
  /** The highest high watermark of the batches handed to this worker (-1: none yet). */
  #logEndSeen = -1;
  /** The offset this worker last asked the group to commit (undefined: none since its claim); see alignGroupOffset. */
  #groupOffsetAsked: number | undefined;
  /** Consecutive failures, for exponential backoff. */
  #failures = 0;
  /** Wall time of the last expiry sweep of stored actors. */
  #sweptAt = 0;
  /** Rewinds so far: a step that checkpoints midway stops if one came in between (its clock and actors are gone). */
  #rewinds = 0;
  /**
   * Timers fired since the last "timers" event: reported once per batch and per tick (`#reportTimers`), not per firing,
   * whose event (a labelled counter and gauge in prom-client) cost about 0.5 µs each, one or more per user event.
   */
  #timersFired = 0;
  /** `ctx.sourcesWatermark()` of every handler call: made once, not per message. */
  readonly #sourcesWatermark = (): number => this.#sourcesPublished;

  private constructor(
    tp: TopicPartition,
    deps: WorkerDeps,
    claim: Claim,
    timers: Map<string, Record<string, number>>,
  ) {
    this.#tp = tp;
    this.#deps = deps;
    this.#epoch = claim.epoch;
    this.#position = claim.nextOffset;
    this.#checkpointed = claim.nextOffset;
    this.#clock = claim.clock;
    this.#checkpointedClock = claim.clock;
    this.#sourcesPublished = this.#checkpointedSourcesPublished = claim.sourcesPublished ?? Number.NEGATIVE_INFINITY;
    this.#logGeneration = claim.logGeneration ?? 0;
    this.#timers.load(timers);
    this.#wall = deps.wallClock ?? Date.now;
    this.#events = deps.instrumentation ?? noInstrumentation;
    this.#lastRecordAt = this.#wall();
    this.#log = deps.logger.child({ topic: tp.topic, partition: tp.partition });
    this.#outputs = new OutputBundler(deps.bundledTopics);
  }

  /** Claims the partition (fencing any previous owner), loads its pending timers, and resumes at its checkpoint. */
  static async claim(tp: TopicPartition, deps: WorkerDeps): Promise<PartitionWorker> {
    const claimed = await deps.store.claim(tp, deps.groupId, deps.owner);
    const timers = await ownTimers(deps, tp);
    const worker = new PartitionWorker(tp, deps, claimed, timers);
    worker.#log.info("partition claimed", {
      epoch: claimed.epoch,
      nextOffset: claimed.nextOffset,
      clock: claimed.clock,
      sourcesPublished: claimed.sourcesPublished,
      logGeneration: claimed.logGeneration,
      timers: worker.pendingTimers,
    });
    return worker;
  }

  /** The partition this worker owns. */
  get topicPartition(): TopicPartition {
    return this.#tp;
  }

  /** The offset this partition resumes from. */
  get checkpointedOffset(): number {
    return this.#checkpointed;
  }

  /** The next offset to be handled. */
  get position(): number {
    return this.#position;
  }

  /** The partition clock (epoch ms). */
  get clock(): number {
    return this.#clock;
  }

  /** Actors in memory, packed or not. */
  get size(): number {
    return this.#cells.size;
  }

  /** Actors in memory that are packed. */
  get packedCount(): number {
    let n = 0;
    for (const cell of this.#cells.values()) if (cell.packed !== undefined) n++;
    return n;
  }

  /** Pending timers across the partition's actors. */
  get pendingTimers(): number {
    return this.#timers.count;
  }

  /** False once the partition was revoked, fenced off, or stopped. */
  get active(): boolean {
    return !this.#closed;
  }

  /** Runs `fn` after everything queued before it; batches, ticks and checkpoints never overlap. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const step = async () => {
      const started = this.#wall();
      try {
        return await fn();
      } finally {
        this.#busySinceRecord += this.#wall() - started;
      }
    };
    const run = this.#lock.then(step, step);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Handles a batch; returns once its messages are applied (and checkpointed, if one was due). */
  handleBatch(batch: RecordBatch, heartbeat: () => Promise<void>): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      const last = batch.records[batch.records.length - 1];
      if (last !== undefined && last.offset >= this.#position) {
        // Records are waiting, handled now or (after a failure) re-read: the partition is not idle.
        this.#lastRecordAt = this.#wall();
        this.#busySinceRecord = 0;
      }
      if (this.#needsResync) await this.#guarded(() => this.#resync());
      if (this.#closed) return;
      if (this.#needsResync) {
        // Still waiting for the store (an outage) while the log grows: the lag says how far behind it has fallen.
        this.#emitLag(batch);
        return;
      }
      if (batch.highWatermark < this.#position) await this.#restartOnShorterLog();
      if (this.#closed) return;
      this.#logEndSeen = Math.max(this.#logEndSeen, batch.highWatermark);
      const records = batch.records.filter((r) => r.offset >= this.#position);
      // Offsets the log left out before the first record (Kafka: a transaction marker) are no gap; a batch with no
      // record to handle may still cover offsets past the position (only a transaction's marker, say).
      const first = records.length > 0 ? Math.min(batch.from ?? records[0].offset, records[0].offset) : batch.from;
      if (first !== undefined && first > this.#position && !(await this.#skipDeletedRecords(first))) {
        // Sought back (or on past deleted records): the lag is the log's end less the position still.
        if (!this.#closed) this.#emitLag(batch);
        return;
      }
      if (records.length === 0) {
        // Nothing to handle: pass the offsets it covers that hold nothing to handle either.
        if (this.#passLeftOut(batch)) this.#emitLag(batch);
        return;
      }
      // Here `first <= position <= records[0].offset` (a skip that lets the batch through moved the position to
      // `first`, so no record was left behind it): the offsets in between hold nothing to handle.
      const at = this.#position;
      await this.#guarded(async () => {
        await this.#checkpointClockAhead();
        // A checkpoint that found an earlier attempt committed has rewound (and sought): the batch is read again. Not
        // handled from here, as `records` lost those before the old position, which the rewind undid.
        if (!this.#closed && !this.#needsResync && this.#position === at) {
          await this.#apply(records);
          this.#passLeftOut(batch);
        }
      });
      // Fenced off meanwhile, the partition was released (its series removed): the new owner reports its lag.
      if (this.#closed) return;
      this.#emitLag(batch);
      if (this.#sinceCheckpoint >= this.#deps.checkpointMaxMessages) await this.#checkpointUntilDone(heartbeat);
    });
  }

  /** Reports how far the position is behind the log's end as of `batch`. */
  #emitLag(batch: RecordBatch): void {
    this.#events.emit({ ...this.#tp, type: "consumer_lag", lag: Math.max(0, batch.highWatermark - this.#position) });
  }

  /**
   * Moves the position to the end of a batch that covers it: the batch's offsets past its records hold none to handle
   * (Kafka: transaction markers, records of aborted transactions), so that the checkpoint reaches the log's end and
   * the partition says it has nothing left (engine/source_watermark.ts). Returns whether it moved.
   */
  #passLeftOut(batch: RecordBatch): boolean {
    const { from, end } = batch;
    if (from === undefined || end === undefined || from > this.#position || end <= this.#position) return false;
    this.#position = end;
    return true;
  }

  /**
   * After a batch of a log that ends before the position: if the log's end says so too (a batch's high watermark may
   * be older than the position), the log no longer holds what this partition handled. A log the group has no committed
   * offset on is new (the broker lost its data, or the topic was deleted and created again): its records were accepted
   * since and never handled, and are read from its start; they used to be taken for handled, every event accepted lost
   * until the new log reached the old position, with a lag of 0. A log the group committed on lost its tail (a broker
   * that lost unflushed records, an unclean leader election): the records before its end were handled, and it is
   * resumed at its end (reading it from its start would handle them again).
   */
  async #restartOnShorterLog(): Promise<void> {
    const { consumer } = this.#deps;
    // Unanswered (the broker unreachable), the batch fails and is read again after a backoff: not taken for handled.
    const [end, earliest] = await Promise.all([consumer.endOffset(this.#tp), consumer.earliestOffset(this.#tp)]);
    if (end >= this.#position) return;
    const committed = await consumer.committedOffset?.(this.#tp);
    const from = committed === undefined ? earliest : end;
    // Stored before anything of the new log is handled: its offsets repeat the old log's, and so would the ids of their
    // outputs (product and global actors took its facts for replays, the alerts table kept the old alerts), unless they
    // name a new generation; stored with the offset, so that a restart before the next checkpoint replays the same ids.
    const generation = await this.#deps.store.restartLog(this.#tp, this.#deps.groupId, this.#epoch, from);
    if (generation === null) {
      this.#release();
      return;
    }
    this.#log.error(
      committed === undefined
        ? "the log ends before this partition's position and the group never committed on it (its topic created again, its records lost); reading it from its start"
        : "the log ends before this partition's position (it lost records the partition had handled); resuming at its end",
      { position: this.#position, end, committed, from, logGeneration: generation },
    );
    this.#position = this.#checkpointed = from;
    this.#logGeneration = generation;
  }

  /**
   * A batch that starts after the next unhandled offset: either records before it are still to be
   * read (a stale batch after a seek: seek back), or retention deleted them before they were
   * handled (the checkpoint is older than the log's start: move on to the earliest record kept,
   * since seeking back would return the same batch for ever). Returns whether to handle the batch.
   */
  async #skipDeletedRecords(first: number): Promise<boolean> {
    let earliest: number;
    try {
      earliest = await this.#deps.consumer.earliestOffset(this.#tp);
    } catch (error) {
      this.#log.warn("cannot read the log's start offset; seeking back", { error });
      earliest = this.#position;
    }
    if (earliest <= this.#position) {
      this.#log.warn("gap before batch; seeking back to the next unhandled offset", {
        expected: this.#position,
        got: first,
      });
      this.#deps.consumer.seek(this.#tp, this.#position);
      return false;
    }
    const unreported = earliest - Math.max(this.#position, this.#skipReportedTo);
    if (unreported > 0) {
      this.#log.error("records were deleted from the log before they were handled; resuming at the earliest kept", {
        from: this.#position,
        to: earliest,
        lost: earliest - this.#position,
      });
      this.#events.emit({ ...this.#tp, type: "records_skipped", count: unreported });
      this.#skipReportedTo = earliest;
    } else {
      this.#log.warn("resuming past deleted records again after a rewind", { from: this.#position, to: earliest });
    }
    this.#position = earliest;
    if (first === earliest) return true;
    this.#deps.consumer.seek(this.#tp, earliest);
    return false;
  }

  /**
   * Wall-clock housekeeping: advances an idle partition's clock and fires the timers that came
   * due, and expires actors past their TTL.
   */
  tick(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      const wall = this.#wall();
      const grace = this.#deps.idleClockMs ?? DEFAULT_IDLE_CLOCK_MS;
      await this.#guarded(async () => {
        await this.#resync();
        if (this.#needsResync || this.#closed) return;
        // A partition that has never had a record has no timers to fire (unless keys moved to it, partitions added to
        // the topic, with theirs); leaving its clock unset lets a historical import into a fresh engine follow its own
        // event time (see README, "late events").
        // Never past the consumer's last read of the log: a record appended while it could not read
        // (a broker unreachable) may be waiting there with an earlier time.
        let idleClock = Math.min(wall - grace, this.#deps.consumer.lastReadAt?.() ?? Infinity);
        if ((this.#clock > 0 || this.#timers.count > 0) && this.#isIdle(wall) && idleClock > this.#clock) {
          idleClock = Math.min(idleClock, await this.#sourceWatermark());
          // Not past records still to come: a transaction still open is handed to no read_committed consumer (nor
          // anything after it) until it ends, however long the partition looks idle. (A fed partition's own records
          // are part of its source watermark.)
          if (idleClock > this.#clock && !this.#deps.source && !(await this.#nothingLeft())) idleClock = this.#clock;
          if (idleClock > this.#clock) {
            this.#clock = idleClock;
            this.#clockAhead = true;
            if (this.#deps.source) this.#sourcesPublished = idleClock;
          }
        }
        // Idle without ever a record, having read the log lately and found nothing left: it holds nothing back.
        const empty = this.#clock === 0 && this.#deps.watermarks !== undefined && this.#watermarkQueued !== null &&
          this.#isIdle(wall) && idleClock >= wall - grace && await this.#nothingLeft();
        if (this.#timers.keysDue(this.#clock).length > 0) {
          await this.#checkpointClockAhead();
          // That checkpoint may have found the store ahead and rewound: timers and clock are the store's now.
          if (!this.#closed && !this.#needsResync) await this.#fireDue(this.#clock);
        }
        // After the facts of the timers due at the clock it publishes.
        if (!this.#closed && !this.#needsResync) this.#queueWatermark(empty);
      });
      if (this.#closed) return;
      this.#expireInMemory(wall);
      this.#reportTimers();
    });
  }

  /**
   * How far a partition fed through other partitions' checkpoints may follow the wall when idle (engine/source_watermark.ts);
   * Infinity for the others. Unknown (the store or the log unreadable): not at all this round.
   */
  async #sourceWatermark(): Promise<number> {
    const { source, store, consumer, groupId } = this.#deps;
    if (!source) return Infinity;
    try {
      return await sourceWatermark(store, consumer, groupId, source, this.#tp, this.#position);
    } catch (error) {
      this.#log.warn("cannot read how far the partitions feeding this one have come; its idle clock waits", { error });
      return Number.NEGATIVE_INFINITY;
    }
  }

  /**
   * Whether the log holds no record past the next one to handle (unknown: no). Records retention deleted before they
   * were handled are none left: no batch ever brings them, and the position stays before them.
   */
  async #nothingLeft(): Promise<boolean> {
    try {
      const { consumer } = this.#deps;
      const end = await consumer.endOffset(this.#tp);
      return end <= this.#position || end <= await consumer.earliestOffset(this.#tp);
    } catch (error) {
      this.#log.warn("cannot read the partition's end offset; its idle clock and watermark wait", { error });
      return false;
    }
  }

  /** Writes a checkpoint if anything changed since the last one. */
  checkpoint(): Promise<void> {
    return this.#serial(async () => {
      try {
        await this.#checkpoint();
      } catch (error) {
        if (this.#commitUncertain) await this.#rewind();
        throw error;
      }
    });
  }

  /** The use times (wall ms) of the clean actors, least recently used first: what `lruCuts` merges across workers. */
  *cleanUseTimes(): Generator<number> {
    for (const cell of this.#cells.values()) if (!cell.dirty) yield cell.usedAt;
  }

  /**
   * Evicts checkpointed (clean) actors: those unused since before `idleBefore` (wall ms), and those within `cut` (the
   * instance's least recently used beyond MAX_ACTORS). An actor used since the cut was found is past it and stays.
   * Their timers stay armed. Returns how many.
   */
  passivate(idleBefore: number, cut: LruCut = NO_CUT): Promise<number> {
    return this.#serial(() => {
      let evicted = 0;
      let ties = cut.ties;
      for (const [key, cell] of this.#cells) {
        const { usedAt } = cell;
        if (usedAt >= idleBefore && (usedAt > cut.usedAt || (usedAt === cut.usedAt && ties === 0))) break;
        if (cell.dirty) continue;
        if (usedAt >= idleBefore && usedAt === cut.usedAt) ties--;
        this.#cells.delete(key);
        evicted++;
      }
      if (evicted > 0) {
        this.#events.emit({ type: "actors", kind: this.#deps.logic.kind, change: "passivated", count: evicted });
      }
      return Promise.resolve(evicted);
    });
  }

  /**
   * Packs checkpointed (clean) actors unused since before `idleBefore` (wall ms): an idle actor
   * keeps its persisted form in a few hundred bytes instead of its live objects, and is unpacked
   * by its next message or timer, as if it had been reloaded from its checkpoint. Stops after
   * `budgetMs` of work (the rest waits for the next round), so packing never stalls the event
   * loop for long. Returns how many it packed.
   */
  pack(idleBefore: number, budgetMs = Infinity): Promise<number> {
    return this.#serial(() => {
      const packer = this.#deps.packer;
      let packed = 0;
      if (!packer || this.#closed) return Promise.resolve(0);
      const deadline = performance.now() + budgetMs;
      for (const cell of this.#cells.values()) {
        if (cell.usedAt >= idleBefore || (packed % 16 === 15 && performance.now() > deadline)) break;
        if (cell.dirty || cell.packed !== undefined || untouched(cell)) continue;
        cell.packed = packer.pack(this.#deps.logic.persist(cell.state));
        cell.state = undefined;
        // The written elements would keep the live objects packing frees; which are stored is known again at unpack.
        // (Only cells with parts get the field: every packed actor is counted in bytes.)
        if (cell.parts !== undefined) {
          cell.packedParts = true;
          cell.parts = undefined;
        }
        packed++;
      }
      if (packed > 0) {
        this.#events.emit({ type: "actors", kind: this.#deps.logic.kind, change: "packed", count: packed });
      }
      return Promise.resolve(packed);
    });
  }

  /**
   * Stops retrying or backing off after failures, at once (not behind the step in progress): the partition is being
   * given up, and its next owner resumes from the last checkpoint. A checkpoint retried until the database came back
   * held up a revocation (and the group's assignment behind it) or a graceful stop for the whole outage.
   */
  stopRetrying(): void {
    if (this.#leaving) return;
    this.#leaving = true;
    this.#leavingNow.abort();
  }

  /** Appends a checkpoint's outputs; once the partition is being given up, within LEAVING_APPEND_MS. */
  async #append(records: readonly OutgoingRecord[]): Promise<void> {
    const unacknowledged = "the partition is being given up; its outputs were not acknowledged";
    if (this.#leavingAppendCut) throw new LogUnavailableError(`${unacknowledged} (the log did not answer)`);
    const appending = this.#deps.producer.append(records, { timeoutMs: OUTPUT_APPEND_TIMEOUT_MS });
    appending.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cut = Promise.withResolvers<never>();
    const onLeaving = () => {
      timer = setTimeout(() => {
        this.#leavingAppendCut = true;
        cut.reject(new LogUnavailableError(unacknowledged));
      }, LEAVING_APPEND_MS);
    };
    if (this.#leaving) onLeaving();
    else this.#leavingNow.signal.addEventListener("abort", onLeaving, { once: true });
    try {
      await Promise.race([appending, cut.promise]);
    } finally {
      clearTimeout(timer);
      this.#leavingNow.signal.removeEventListener("abort", onLeaving);
    }
  }

  /** Final checkpoint (best effort), then forgets the partition's actors. */
  close(): Promise<void> {
    this.stopRetrying();
    return this.#serial(async () => {
      if (this.#closed) return;
      try {
        await this.#checkpoint();
      } catch (error) {
        this.#log.warn("final checkpoint failed; the next owner resumes from the previous one", { error });
      }
      this.#closed = true;
      this.#cells.clear();
      this.#timers.clear();
      this.#events.emit({ ...this.#tp, type: "partition_released" });
      this.#log.info("partition released", { nextOffset: this.#checkpointed });
    });
  }

  /** The persisted form of a key's live state, if this partition holds it in memory. */
  peek(key: string): unknown | undefined {
    const cell = this.#cells.get(key);
    if (!cell || untouched(cell)) return undefined;
    return cell.packed !== undefined ? this.#deps.packer!.unpack(cell.packed) : this.#deps.logic.persist(cell.state);
  }

  /** Runs a processing step; a failure discards everything since the last checkpoint and re-reads from there. */
  async #guarded(step: () => Promise<void>): Promise<void> {
    try {
      await step();
      this.#failures = 0;
    } catch (error) {
      const delay = this.#backoff();
      this.#log.error("handling failed; rewinding to the last checkpoint", { error: ensureError(error), delay });
      await this.#rewind();
      if (!this.#leaving) await sleep(delay);
    }
  }

  /**
   * Checkpoints until it succeeds, the partition is lost, or it is being given up (then its final checkpoint tries
   * again once); consumption of this partition waits meanwhile.
   */
  async #checkpointUntilDone(heartbeat: () => Promise<void>): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#checkpoint();
        this.#failures = 0;
        return;
      } catch (error) {
        const delay = this.#backoff();
        const next = this.#leaving ? "the partition is being given up" : "retrying";
        this.#log.error(`checkpoint failed; ${next}`, { error: ensureError(error), delay });
        if (!this.#leaving) {
          await sleep(delay);
          await heartbeat().catch(() => {});
          // Not after a commit that may have landed: the position is about to be the store's.
          if (!this.#commitUncertain) await this.#emitLagFromEnd();
        }
        if (this.#commitUncertain) {
          // It may have committed: continue from whatever the store holds, replaying what it lacks.
          await this.#rewind();
          return;
        }
        if (this.#leaving) return;
      }
    }
  }

  /**
   * Reports the lag from the log's end while this partition's consumption waits (no batch comes to report it), so that
   * it rises with the log during an outage instead of staying at its value from before.
   */
  async #emitLagFromEnd(): Promise<void> {
    try {
      const end = await this.#endUnlessLeaving();
      if (end === undefined || this.#closed || this.#leaving) return;
      this.#events.emit({ ...this.#tp, type: "consumer_lag", lag: Math.max(0, end - this.#position) });
    } catch {
      // The end unknown (the broker unreachable too): the lag stays as last reported.
    }
  }

  /** The log's end, or undefined once the partition is being given up (a hung broker answers the end after 2 s). */
  async #endUnlessLeaving(): Promise<number | undefined> {
    if (this.#leaving) return undefined;
    const leaving = Promise.withResolvers<undefined>();
    const onLeaving = () => leaving.resolve(undefined);
    this.#leavingNow.signal.addEventListener("abort", onLeaving, { once: true });
    try {
      return await Promise.race([this.#deps.consumer.endOffset(this.#tp), leaving.promise]);
    } finally {
      this.#leavingNow.signal.removeEventListener("abort", onLeaving);
    }
  }

  #backoff(): number {
    const { initial, max } = this.#deps.retryBackoffMs ?? DEFAULT_BACKOFF;
    return Math.min(initial * 2 ** this.#failures++, max);
  }

  /** Drops uncheckpointed work (states, timers, outputs) and re-reads the log from the checkpoint. */
  async #rewind(): Promise<void> {
    this.#rewinds++;
    this.#cells.clear();
    this.#outputs.clear();
    this.#outputCounts.clear();
    this.#deadLetterCounts.clear();
    this.#alerts = [];
    this.#recommendations = [];
    this.#analyticsHistory = [];
    this.#productMinutes.clear();
    this.#sinceCheckpoint = 0;
    this.#position = this.#checkpointed;
    this.#clock = this.#checkpointedClock;
    this.#clockAhead = false;
    this.#sourcesPublished = this.#checkpointedSourcesPublished;
    this.#watermarkQueued = undefined;
    this.#deps.consumer.seek(this.#tp, this.#checkpointed);
    this.#needsResync = true;
    try {
      await this.#resync();
    } catch (error) {
      // Typically the outage that caused the rewind: the next batch or tick retries first.
      this.#log.warn("could not re-read the checkpoint after a rewind; retrying before the next record", { error });
    }
  }

  /**
   * After a rewind, nothing is handled until the worker stands where the store does. If a commit
   * failed without an answer, it may have landed: the stored offset and clock are the truth, or
   * records would be applied twice onto the states it wrote. And the timer index must be the
   * checkpoint's again: timers that fired since would otherwise never fire in the replay, and
   * timers armed since would fire before the messages that arm them. Throws while the store is down.
   */
  async #resync(): Promise<void> {
    if (!this.#needsResync) return;
    const { store, groupId, consumer } = this.#deps;
    if (this.#commitUncertain) {
      const stored = await store.settled(this.#tp, groupId);
      if (!stored || stored.epoch !== this.#epoch) {
        this.#release();
        return;
      }
      this.#checkpointed = this.#position = stored.nextOffset;
      this.#checkpointedClock = this.#clock = stored.clock;
      this.#checkpointedSourcesPublished = this.#sourcesPublished = stored.sourcesPublished ?? Number.NEGATIVE_INFINITY;
      this.#clockAhead = false;
      consumer.seek(this.#tp, stored.nextOffset);
      this.#commitUncertain = false;
    }
    this.#timers.load(await ownTimers(this.#deps, this.#tp));
    this.#needsResync = false;
  }

  /** Gives the partition up: another instance has claimed it since. */
  #release(): void {
    this.#log.warn("checkpoint fenced off: another instance owns this partition now", { epoch: this.#epoch });
    this.#closed = true;
    this.#cells.clear();
    this.#timers.clear();
    this.#productMinutes.clear();
    this.#outputCounts.clear();
    this.#deadLetterCounts.clear();
    this.#events.emit({ ...this.#tp, type: "partition_released" });
  }

  async #apply(records: readonly LogRecord[]): Promise<void> {
    const { logic } = this.#deps;
    const partitions = this.#deps.partitionCounts?.get(this.#tp.topic);
    const byKey = new Map<string, Item[]>();
    // Announced before the facts of this worker's first records, so that the fed partition waits for it.
    if (this.#watermarkQueued === undefined) this.#queueWatermark();
    let clock = this.#clock;
    let messages = 0;
    for (const read of records) {
      // A plain record is its own only entry (no array made for it: one per event).
      let entries: readonly LogRecord[] | undefined;
      if (isBundle(read)) {
        try {
          entries = expandBundle(read);
        } catch (error) {
          this.#reject(read, error);
          continue;
        }
      }
      const count = entries === undefined ? 1 : entries.length;
      messages += count;
      for (let i = 0; i < count; i++) {
        const record = entries === undefined ? read : entries[i];
        let message: unknown;
        try {
          if (record.key === null) throw new ValidationError("record has no key");
          if (record.key.includes("\u0000")) {
            throw new ValidationError("record key contains U+0000 (NUL), which PostgreSQL cannot store");
          }
          const home = partitions === undefined ? record.partition : partitionForKey(record.key, partitions);
          if (home !== record.partition) {
            throw new ValidationError(
              `record key belongs to partition ${home} of ${partitions}, not ${record.partition}: produce with Kafka's default (murmur2) partitioner`,
            );
          }
          message = logic.decode(record);
        } catch (error) {
          this.#reject(record, error);
          continue;
        }
        const at = logic.eventTime(message);
        clock = Math.max(clock, at || 0);
        let list = byKey.get(record.key!);
        if (!list) byKey.set(record.key!, list = []);
        list.push({ record, message, clock, at });
      }
    }
    await this.#activate([...byKey.keys()], byKey);
    const awaiting = settleAll(byKey, (items, key) => this.#runKey(key, items));
    if (awaiting !== undefined) await awaiting;
    this.#clock = clock;
    // Past the batch before the other keys' timers fire: a slice's checkpoint then covers the whole batch.
    this.#position = records[records.length - 1].offset + 1;
    this.#sinceCheckpoint += messages;
    await this.#fireDue(clock);
    if (this.#timersFired > 0) this.#reportTimers();
  }

  /** Reports the timers fired since the last report, and how many are pending. */
  #reportTimers(): void {
    const fired = this.#timersFired;
    this.#timersFired = 0;
    this.#events.emit({ ...this.#tp, type: "timers", kind: this.#deps.logic.kind, fired, pending: this.pendingTimers });
  }

  /** Dead-letters a record that can never be handled (decoding is pure: whatever it throws stays). */
  #reject(record: LogRecord, error: unknown): void {
    const reason = error instanceof EngineError ? error : new ValidationError(ensureError(error).message);
    this.#outputs.add(deadLetter(this.#deps.topics.dlq, record, reason));
    tally(this.#deadLetterCounts, record.topic, reason.code);
    this.#log.warn("record dead-lettered", { offset: record.offset, error: reason });
  }

  /**
   * Brings keys into memory (most recently used), loading the missing ones with one query. `items` gives the records
   * each key is activated for (none: a timer): the TTL applies at load by its first one's append time (see `#pastTtl`).
   */
  async #activate(keys: readonly string[], items?: ReadonlyMap<string, readonly Item[]>): Promise<void> {
    const { logic, store } = this.#deps;
    const missing = keys.filter((key) => !this.#cells.has(key));
    const stored = missing.length > 0 ? await store.load(logic.kind, missing) : new Map<string, StoredActor>();
    if (missing.length > 0) {
      this.#events.emit({ type: "actors", kind: logic.kind, change: "activated", count: missing.length });
    }
    let unpacked = 0;
    for (const key of keys) {
      let cell = this.#cells.get(key);
      if (cell) {
        this.#cells.delete(key);
        if (cell.packed !== undefined) {
          cell.state = logic.restore(this.#deps.packer!.unpack(cell.packed));
          cell.packed = undefined;
          // Packed clean, its elements are the stored ones: the next checkpoint writes those that change from here, not
          // every one (the global actor's day of minutes, about 1 MB, after each idle spell).
          if (cell.packedParts) {
            cell.parts = splitParts(logic.persistedParts!, logic.persist(cell.state), undefined).written;
            cell.packedParts = false;
          }
          unpacked++;
        }
      } else {
        const data = stored.get(key);
        cell = data && !this.#pastTtl(key, data, items?.get(key)?.[0].record.timestamp)
          ? {
            state: logic.restore(data.state),
            packed: undefined,
            dirty: false,
            lastActiveAt: data.lastActiveAt,
            usedAt: 0,
          }
          : { state: logic.initial(key), packed: undefined, dirty: false, lastActiveAt: 0, usedAt: 0 };
      }
      cell.usedAt = this.#wall();
      this.#cells.set(key, cell);
    }
    if (unpacked > 0) this.#events.emit({ type: "actors", kind: logic.kind, change: "unpacked", count: unpacked });
  }

  /**
   * Runs a key's items in order, synchronously while nothing awaits (most handlers and timers do not): a promise for
   * the rest only from the first item that does. Undefined: the run is done; a throw: it failed.
   */
  #runKey(key: string, items: readonly Item[]): Promise<void> | undefined {
    const cell = this.#cells.get(key)!;
    for (let i = 0; i < items.length; i++) {
      const awaiting = this.#runItem(key, cell, items[i]);
      if (awaiting !== undefined) return this.#runKeyRest(key, cell, items, i + 1, awaiting);
    }
    return undefined;
  }

  /** The rest of a key's run once item `from - 1` awaits (`awaiting`). */
  async #runKeyRest(key: string, cell: Cell, items: readonly Item[], from: number, awaiting: Promise<void>) {
    await awaiting;
    for (let i = from; i < items.length; i++) {
      const next = this.#runItem(key, cell, items[i]);
      if (next !== undefined) await next;
    }
  }

  /** Fires the key's timers due at the item's clock, then handles it; a promise only if one of them awaits. */
  #runItem(key: string, cell: Cell, item: Item): Promise<void> | undefined {
    if (!this.#timers.has(key)) return this.#handleItem(key, cell, item);
    const firing = this.#fireKeyTimers(key, cell, item.clock);
    return firing === undefined
      ? this.#handleItem(key, cell, item)
      : firing.then(() => this.#handleItem(key, cell, item));
  }

  /** Handles one message; a promise only if its handler returned one. */
  #handleItem(key: string, cell: Cell, item: Item): Promise<void> | undefined {
    const ctx = new RecordContext(
      this.#timers,
      key,
      cell,
      item.clock,
      this.#sourcesWatermark,
      item.record,
      this.#logGeneration,
    );
    try {
      const next = this.#deps.logic.handle(cell.state, item.message, ctx);
      if (typeof (next as PromiseLike<unknown> | null)?.then === "function") {
        return this.#handledLater(key, cell, item, ctx, next as PromiseLike<unknown>);
      }
      this.#handled(cell, item, ctx, next);
    } catch (error) {
      this.#handlerFailed(key, item, ctx, error);
    }
    return undefined;
  }

  /** Completes a message whose handler returned a promise. */
  async #handledLater(key: string, cell: Cell, item: Item, ctx: RecordContext, next: PromiseLike<unknown>) {
    try {
      this.#handled(cell, item, ctx, await next);
    } catch (error) {
      this.#handlerFailed(key, item, ctx, error);
    }
  }

  /** Takes a handled message's new state and queues its outputs. */
  #handled(cell: Cell, item: Item, ctx: RecordContext, state: unknown): void {
    const { logic } = this.#deps;
    // A new actor the message left as it was (the user actor forwarding an inventory_updated keyed by its
    // product) stays untouched: nothing to persist, and no actor to show to queries.
    if (state !== cell.state || !untouched(cell)) {
      cell.state = state;
      cell.dirty = true;
      cell.lastActiveAt = Math.max(cell.lastActiveAt, item.record.timestamp);
    }
    if (item.record.timestamp > this.#logTime) this.#logTime = item.record.timestamp;
    this.#publish(ctx.emitted);
    this.#events.emit({
      type: "message_processed",
      kind: logic.kind,
      label: logic.label?.(item.message) ?? logic.kind,
      // A message without an event time (a watermark) has no lag: observed as 0 s, it pulled the quantiles down.
      lagSeconds: item.at > 0 ? (this.#wall() - item.at) / 1000 : Number.NaN,
    });
  }

  /** A TerminalError dead-letters the message (the key goes on); any other failure is thrown (the batch rewinds). */
  #handlerFailed(key: string, item: Item, ctx: RecordContext, error: unknown): void {
    if (!(error instanceof TerminalError)) throw error;
    // Nothing of a rejected record stays: its outputs were never queued, and its timer changes are undone.
    for (const [name, previous] of (ctx.undo ?? []).reverse()) {
      if (previous === undefined) this.#timers.delete(key, name);
      else this.#timers.set(key, name, previous);
    }
    this.#outputs.add(deadLetter(this.#deps.topics.dlq, item.record, error));
    tally(this.#deadLetterCounts, item.record.topic, error.code);
    this.#log.warn("handler rejected record", { key, offset: item.record.offset, error });
  }

  /**
   * Fires every timer due at `clock`, activating the actors that own them, a slice of keys at a time
   * (WorkerDeps.timerSlice), each loaded in the room checkpointed actors make as far as MAX_ACTORS needs. Each slice but the last is checkpointed before the next (without the partition's watermark:
   * timers due at that clock are still to fire), and the actors it loaded go again as far as the instance is beyond
   * MAX_ACTORS: a clock passing many deadlines at once (an idle advance after downtime, a claim) loaded every such actor,
   * and kept them until the round's checkpoint. A replay from a slice's checkpoint fires the rest, as after an idle
   * advance's checkpoint.
   */
  async #fireDue(clock: number): Promise<void> {
    const due = this.#timers.keysDue(clock);
    const slice = Math.max(1, Math.floor(this.#deps.timerSlice?.() ?? Infinity));
    const rewinds = this.#rewinds;
    for (let from = 0; from < due.length; from += slice) {
      const keys = due.slice(from, from + slice);
      const loaded = keys.filter((key) => !this.#cells.has(key));
      this.#makeRoom(loaded.length, new Set(keys));
      await this.#activate(keys);
      const awaiting = settleAll(keys, (key) => this.#fireKeyTimers(key, this.#cells.get(key)!, clock));
      if (awaiting !== undefined) await awaiting;
      if (from + slice >= due.length) return;
      await this.#checkpoint(true);
      if (this.#closed || this.#rewinds !== rewinds) return;
      this.#evictLoaded(loaded);
    }
  }

  /** Passivates actors a timer slice loaded, now checkpointed, as many as the instance holds beyond MAX_ACTORS. */
  #evictLoaded(keys: readonly string[]): void {
    this.#evict(keys, this.#deps.actorExcess?.() ?? 0);
  }

  /**
   * Before a timer slice loads `loading` actors, passivates this partition's least recently used checkpointed ones but
   * the slice's, as many as the instance would then hold beyond MAX_ACTORS: loaded beside a full memory, each slice
   * held MAX_ACTORS and a slice, twice MAX_ACTORS, until the next checkpoint.
   */
  #makeRoom(loading: number, slice: ReadonlySet<string>): void {
    const excess = (this.#deps.actorExcess?.() ?? Number.NEGATIVE_INFINITY) + loading;
    if (excess <= 0) return;
    const cells = this.#cells;
    this.#evict(
      (function* () {
        for (const key of cells.keys()) if (!slice.has(key)) yield key;
      })(),
      excess,
    );
  }

  /** Passivates up to `excess` of `keys` (those in memory and checkpointed), in their order. */
  #evict(keys: Iterable<string>, excess: number): void {
    let evicted = 0;
    for (const key of keys) {
      if (excess <= 0) break;
      const cell = this.#cells.get(key);
      if (!cell || cell.dirty) continue;
      this.#cells.delete(key);
      excess--;
      evicted++;
    }
    if (evicted > 0) {
      this.#events.emit({ type: "actors", kind: this.#deps.logic.kind, change: "passivated", count: evicted });
    }
  }

  /**
   * Fires `key`'s timers due at `clock`, earliest first (ties by name); `ctx.now()` is each timer's deadline. Synchronous
   * while the timer handlers are: a promise (of the rest) only from the first that returns one.
   */
  #fireKeyTimers(key: string, cell: Cell, clock: number, firedBefore = 0): Promise<void> | undefined {
    const { logic } = this.#deps;
    for (let fired = firedBefore; fired < MAX_FIRINGS_PER_KEY; fired++) {
      const next = this.#timers.nextDue(key, clock);
      if (!next) return undefined;
      const [name, at] = next;
      this.#timers.delete(key, name);
      cell.dirty = true;
      this.#timersFired++;
      if (!logic.onTimer) continue;
      const ctx = new TimerContext(this.#timers, key, cell, at, this.#sourcesWatermark, logic.kind, name);
      const state = logic.onTimer(cell.state, name, ctx);
      if (typeof (state as PromiseLike<unknown> | null)?.then === "function") {
        return this.#firedLater(key, cell, clock, fired + 1, ctx, state as PromiseLike<unknown>);
      }
      cell.state = state;
      this.#publish(ctx.emitted);
    }
    this.#log.warn("timer handler keeps re-arming due timers; deferring the rest", { key });
    return undefined;
  }

  /** Completes a timer whose handler returned a promise, then fires the key's other due timers. */
  async #firedLater(
    key: string,
    cell: Cell,
    clock: number,
    fired: number,
    ctx: TimerContext,
    state: PromiseLike<unknown>,
  ) {
    cell.state = await state;
    this.#publish(ctx.emitted);
    const rest = this.#fireKeyTimers(key, cell, clock, fired);
    if (rest !== undefined) await rest;
  }

  /** Queues a handler's outputs for the next checkpoint, and their query projections. */
  #publish(emitted: readonly Emitted[]): void {
    // Actors emit to a topic by its name in the configuration's topic table (LogTopic ⊂ keyof Topics).
    const names = this.#deps.topics;
    // Indexed, not `for…of`: the array iterator and its result objects cost ~160 bytes per event (sampled heap profile).
    for (let i = 0; i < emitted.length; i++) {
      const { topic, key, value } = emitted[i];
      if (topic === "analyticsHistory" || topic === "productMinutes") {
        this.#store(topic, key, value);
        continue;
      }
      this.#outputs.add({ topic: names[topic], key, value: JSON.stringify(value) });
      // Under the log's topic name, as every other metric's `topic` label (not the table's `productEvents`).
      tally(this.#outputCounts, names[topic], outputSubtype(value));
      const schema = topic === "alerts" ? alertSchema : topic === "recommendations" ? recommendationSchema : null;
      if (!schema) continue;
      const parsed = safeParseFast(schema, value);
      if (!parsed.success) {
        this.#log.warn("output does not match its topic's contract; published but not stored", { topic, key });
      } else if (topic === "alerts") {
        this.#alerts.push(parsed.data as Alert);
      } else {
        this.#recommendations.push(parsed.data as Recommendation);
      }
    }
  }

  /** Reports the outputs and dead letters the log has just acknowledged. */
  #reportCounts(): void {
    for (const [topic, counts] of this.#outputCounts) {
      for (const [subtype, count] of counts) this.#events.emit({ type: "output", topic, subtype, count });
    }
    for (const [topic, counts] of this.#deadLetterCounts) {
      for (const [code, count] of counts) this.#events.emit({ type: "dead_lettered", topic, code, count });
    }
    this.#outputCounts.clear();
    this.#deadLetterCounts.clear();
  }

  /** Queues a stored output (not published) for the next checkpoint's transaction. */
  #store(topic: "analyticsHistory" | "productMinutes", key: string, value: unknown): void {
    if (topic === "productMinutes") {
      const parsed = safeParseFast(productMinuteSchema, value);
      if (parsed.success) this.#productMinutes.add(parsed.data);
      else this.#log.warn("product minute does not match its contract; not stored", { key });
      return;
    }
    const parsed = safeParseFast(analyticsHistorySchema, value);
    if (parsed.success) this.#analyticsHistory.push(parsed.data);
    else this.#log.warn("analytics history does not match its contract; not stored", { key });
  }

  /**
   * The time an actor's inactivity is measured to: the log's (the latest record handled) while records come, so that
   * a backlog worked through after downtime is judged by its own times, not as days of silence between an actor's
   * consecutive records; the wall's once the partition is idle.
   */
  #ttlNow(wall: number): number {
    return this.#isIdle(wall) ? wall : Math.min(wall, this.#logTime);
  }

  /** Whether the partition has waited `idleClockMs` for records, not counting time stuck in its own steps. */
  #isIdle(wall: number): boolean {
    return wall - this.#lastRecordAt - this.#busySinceRecord >= (this.#deps.idleClockMs ?? DEFAULT_IDLE_CLOCK_MS);
  }

  /**
   * Whether a stored actor is past its TTL, so activates afresh (and its row is deleted by the next checkpoint): it was
   * expired in memory and that delete has not committed yet (a failed checkpoint, a rewind, or its record came first),
   * or, loaded for a record, that record came more than the TTL after the actor's last one. The record's own append
   * time, not the wall's, so that a backlog worked through after downtime is judged by its own times, the same way in
   * a replay. An actor with a pending timer never is.
   */
  #pastTtl(key: string, data: StoredActor, recordAt: number | undefined): boolean {
    const ttl = this.#deps.stateTtlMs ?? 0;
    if (ttl <= 0 || Object.keys(data.timers).length > 0) return false;
    // Never judged later than the wall: a record stamped in the future (a producer's clock) does not wipe an actor.
    const at = recordAt === undefined ? undefined : Math.min(recordAt, this.#wall());
    if (!this.#expired.has(key) && (at === undefined || at - data.lastActiveAt <= ttl)) return false;
    this.#expired.add(key);
    return true;
  }

  /** Removes actors inactive for longer than the TTL (and without pending timers) from memory. */
  #expireInMemory(wall: number): void {
    const ttl = this.#deps.stateTtlMs ?? 0;
    if (ttl <= 0) return;
    const cutoff = this.#ttlNow(wall) - ttl;
    let expired = 0;
    for (const [key, cell] of this.#cells) {
      // A dirty actor's last changes are not checkpointed yet: it expires once they are.
      if (cell.lastActiveAt < cutoff && !cell.dirty && !this.#timers.has(key)) {
        this.#cells.delete(key);
        this.#expired.add(key);
        expired++;
      }
    }
    if (expired > 0) {
      this.#events.emit({ type: "actors", kind: this.#deps.logic.kind, change: "expired", count: expired });
    }
  }

  /**
   * Drops from memory the actors a checkpoint's sweep just deleted from the store (inactive since before `cutoff`, no
   * pending timer; all clean now), as the housekeeping round would: kept until then, a record for one revived it in
   * memory and its next checkpoint wrote it onto no row, with a parts field only the parts that changed (lost minutes).
   */
  #forgetSwept(cutoff: number): void {
    for (const [key, cell] of this.#cells) {
      if (cell.lastActiveAt < cutoff && !cell.dirty && !this.#timers.has(key)) {
        this.#cells.delete(key);
        this.#expired.add(key);
      }
    }
  }

  /**
   * Queues this partition's watermark after the outputs so far (WorkerDeps.watermarks): first, since its claim or
   * rewind, before the facts of its first records or at its first tick, at the clock it resumes from; then when the
   * clock has reached another minute; `empty`: idle without ever a record, once. A watermark of an idle advance makes
   * the checkpoint publishing it write that clock too: something has seen it.
   */
  #queueWatermark(empty = false): void {
    const to = this.#deps.watermarks;
    if (!to) return;
    const last = this.#watermarkQueued;
    let clock: number | null;
    if (this.#clock > 0) {
      const sameMinute = typeof last === "number" && last > 0 &&
        Math.floor(this.#clock / WATERMARK_MS) <= Math.floor(last / WATERMARK_MS);
      if (sameMinute) return;
      clock = this.#clock;
    } else if (empty) {
      if (last === null) return;
      clock = null;
    } else {
      if (last !== undefined) return;
      clock = 0;
    }
    this.#watermarkQueued = clock;
    // Typed by the schema the global actor decodes it with (actors/facts.ts), so the two cannot drift apart.
    const value: SourceWatermark = {
      fact: "watermark",
      partition: this.#tp.partition,
      partitions: to.partitions,
      clock,
    };
    this.#outputs.add({ topic: to.topic, key: to.key, value: JSON.stringify(value) });
  }

  /**
   * Checkpoints an idle advance of the clock before anything depends on it: a record handled at that
   * clock, or a timer firing from it. A replay resumes from the advanced clock and does the same.
   */
  async #checkpointClockAhead(): Promise<void> {
    if (this.#clockAhead) await this.#checkpoint(true);
  }

  /**
   * A checkpoint attempt; one that fails is counted (engine_checkpoint_failures_total) whoever asked for it: the
   * periodic and final checkpoints too, not only those forced by CHECKPOINT_MAX_MESSAGES.
   */
  async #checkpoint(clockOnly = false): Promise<void> {
    try {
      await this.#writeCheckpoint(clockOnly);
    } catch (error) {
      this.#events.emit({ type: "checkpoint", topic: this.#tp.topic, seconds: 0, states: 0, ok: false });
      throw error;
    }
  }

  /** `clockOnly`: write even if only the clock moved (periodic checkpoints leave an idle advance for later). */
  async #writeCheckpoint(clockOnly: boolean): Promise<void> {
    if (this.#closed) return;
    // Not with an idle advance's checkpoint: the timers due at that clock have not fired yet, and their facts go first.
    if (!clockOnly && this.#watermarkQueued !== undefined) this.#queueWatermark();
    // Not `[...cells].filter`: that made a [key, cell] pair for every actor in memory (all of them clean but these).
    const dirty: [string, Cell][] = [];
    this.#cells.forEach((cell, key) => {
      if (cell.dirty) dirty.push([key, cell]);
    });
    const ttl = this.#deps.stateTtlMs ?? 0;
    const sweep = ttl > 0 && this.#wall() - this.#sweptAt >= EXPIRY_SWEEP_MS;
    const nothingNew = dirty.length === 0 && this.#expired.size === 0 && this.#outputs.length === 0;
    if (nothingNew && this.#position === this.#checkpointed && !sweep && !(clockOnly && this.#clockAhead)) return;
    const started = performance.now();
    const { store, logic, groupId } = this.#deps;
    if (this.#outputs.length > 0) {
      // An owner that lost the partition without noticing must not publish outputs computed from
      // states the new owner may have written since. Every state and timer these outputs came from
      // was read before this check: if it passes, they were read before any claim, and what a claim
      // landing before the append lets out, the new owner publishes too, identical (README, "A
      // stalled owner publishes nothing the new owner would not").
      const stored = await store.stored(this.#tp, groupId);
      if (!stored || stored.epoch !== this.#epoch) {
        this.#release();
        return;
      }
    }
    const outgoing = this.#outputs.records();
    await this.#append(outgoing);
    this.#outputs.clear();
    // Counted as the log takes them, so the counts match the topics: a commit that fails after this
    // does not append them again, and a replay after a rewind appends (and counts) them again.
    this.#reportCounts();
    // Where exactly-once is hardest (outputs out, their checkpoint not yet): the kill test aims its SIGKILL here.
    if (outgoing.length > 0) {
      this.#log.debug("checkpoint outputs appended", {
        records: outgoing.length,
        from: this.#checkpointed,
        nextOffset: this.#position,
      });
    }
    const published = performance.now();
    const position = this.#position;
    const clock = this.#clock;
    const sourcesPublished = this.#sourcesPublished;
    const deletes = [...this.#expired];
    const written: [Cell, WrittenParts][] = [];
    const upserts = dirty.map(([key, cell]) => {
      const row = {
        key,
        state: logic.persist(cell.state),
        timers: this.#timers.of(key),
        lastActiveAt: cell.lastActiveAt,
      };
      if (!logic.persistedParts) return row;
      const split = splitParts(logic.persistedParts, row.state, cell.parts);
      written.push([cell, split.written]);
      return { ...row, state: split.state, parts: split.parts };
    });
    const persisted = performance.now();
    const expireBefore = sweep ? this.#ttlNow(this.#wall()) - ttl : undefined;
    let result: CommitResult;
    try {
      result = await store.commit({
        tp: this.#tp,
        groupId,
        epoch: this.#epoch,
        previousOffset: this.#checkpointed,
        nextOffset: position,
        clock,
        sourcesPublished: sourcesPublished === Number.NEGATIVE_INFINITY ? undefined : sourcesPublished,
        kind: logic.kind,
        partitions: this.#deps.partitionCounts?.get(this.#tp.topic),
        upserts,
        deletes,
        expireBefore,
        projections: {
          alerts: this.#alerts,
          recommendations: this.#recommendations,
          analyticsHistory: this.#analyticsHistory,
          productMinutes: this.#productMinutes.values(),
        },
      });
    } catch (error) {
      // A lost connection may hide a commit that landed; the callers rewind and re-read the store.
      this.#commitUncertain = true;
      throw error;
    }
    this.#commitUncertain = false;
    const committed = performance.now();
    if (sweep) this.#sweptAt = this.#wall();
    if (result.expired > 0) {
      this.#events.emit({ type: "actors", kind: logic.kind, change: "expired", count: result.expired });
    }
    if (!result.committed && result.storedOffset !== undefined) {
      // An earlier attempt committed (its reply was lost) and this worker has moved on since: the
      // store is the truth. Resume from it like after a crash; replayed outputs keep their ids.
      this.#log.warn("an earlier checkpoint attempt had committed; resuming from the stored offset", {
        believed: this.#checkpointed,
        stored: result.storedOffset,
        attempted: position,
      });
      this.#checkpointed = result.storedOffset;
      this.#checkpointedClock = result.storedClock ?? 0;
      this.#checkpointedSourcesPublished = result.storedSourcesPublished ?? Number.NEGATIVE_INFINITY;
      await this.#rewind();
      return;
    }
    if (!result.committed) {
      this.#release();
      return;
    }
    for (const [, cell] of dirty) cell.dirty = false;
    for (const [cell, parts] of written) cell.parts = parts;
    for (const key of deletes) this.#expired.delete(key);
    if (expireBefore !== undefined) this.#forgetSwept(expireBefore);
    this.#alerts = [];
    this.#recommendations = [];
    this.#analyticsHistory = [];
    this.#productMinutes.clear();
    const advanced = position !== this.#checkpointed;
    this.#checkpointed = position;
    this.#checkpointedClock = clock;
    this.#checkpointedSourcesPublished = sourcesPublished;
    this.#clockAhead = false;
    this.#sinceCheckpoint = 0;
    if (nothingNew && !advanced) return;
    const seconds = (committed - started) / 1000;
    const phases = {
      publish: (published - started) / 1000,
      persist: (persisted - published) / 1000,
      commit: (committed - persisted) / 1000,
    };
    this.#events.emit({ type: "checkpoint", topic: this.#tp.topic, seconds, states: upserts.length, ok: true, phases });
    this.#log.debug("checkpoint", {
      nextOffset: position,
      states: upserts.length,
      deleted: deletes.length,
      expired: result.expired,
      ms: Math.round(performance.now() - started),
    });
    // Not past the end of the log as its batches have shown it: a commit there would tell #restartOnShorterLog that the
    // group committed on a log that is new to it (a topic created again under the checkpoints), read as a lost tail.
    if (this.#deps.consumer.committedOffset !== undefined && position > this.#logEndSeen) return;
    this.#commitGroupOffset(position);
  }

  /** Asks the group to commit `offset` (lag reporting only), without waiting. */
  #commitGroupOffset(offset: number): void {
    this.#groupOffsetAsked = offset;
    this.#deps.consumer.commit(this.#tp, offset).catch((error) => {
      this.#log.debug("committing the group offset failed (lag reporting only)", { error });
    });
  }

  /**
   * Brings the group's committed offset to the checkpoint if this worker has not asked for it since its claim: a
   * partition commits with each checkpoint that moves it, so one that moved here while idle kept the offset its old
   * owner's last landed commit left, and tools reading the group's lag showed it behind for as long as no record came.
   * Never past the log's end (see #writeCheckpoint), which is read outside the worker's lock, and not waited for once
   * the partition is being given up; a failed read waits for the next call. Once per claim: the group's offset is not
   * read (asking it costs a request, as the commit does).
   */
  async alignGroupOffset(): Promise<void> {
    if (this.#closed || this.#leaving || this.#groupOffsetAsked === this.#checkpointed) return;
    let end = Infinity;
    if (this.#deps.consumer.committedOffset !== undefined && this.#checkpointed > this.#logEndSeen) {
      try {
        const listed = await this.#endUnlessLeaving();
        if (listed === undefined) return;
        end = listed;
      } catch (error) {
        this.#log.debug("cannot read the partition's end offset; the group's offset is aligned later", { error });
        return;
      }
    }
    // In the lock, so that no checkpoint's commit can be overtaken by this one (commits land in the order asked for).
    await this.#serial(() => {
      const offset = this.#checkpointed;
      const unsure = this.#needsResync || this.#commitUncertain;
      if (!this.#closed && !this.#leaving && !unsure && this.#groupOffsetAsked !== offset && offset <= end) {
        this.#commitGroupOffset(offset);
      }
      return Promise.resolve();
    });
  }
}

/**
 * The pending timers of the keys `tp` holds. Placed by the topic's partition count when known, not by the partition a
 * key's row names: after partitions were added to the topic, a key that moved keeps the old one in its row until its
 * new partition writes it, and its timers are the new partition's (the old one fired them, so that a cancel on the new
 * one cancelled nothing, and both wrote the actor). The store reads the partition's own rows, and every partition's
 * only among rows placed by another count (it used to read them all: 100,000 rows per claim, docs/performance.md).
 */
export function ownTimers(
  deps: Pick<WorkerDeps, "store" | "logic" | "partitionCounts">,
  tp: TopicPartition,
): Promise<Map<string, Record<string, number>>> {
  return deps.store.loadTimers(deps.logic.kind, tp.partition, deps.partitionCounts?.get(tp.topic));
}

/**
 * Starts every key's run (`run` of each entry, in order): a run returns a promise only if it awaits, or throws at once.
 * Waits for every run that awaits, then throws the first failure in key order, as if each run were a promise: a rewind
 * must not start while other keys still emit, or their outputs (and additive product minute deltas) would outlive it and
 * be emitted again by the replay. Undefined (no promise per batch) if no run awaited or failed.
 */
function settleAll<V, K>(
  entries: { forEach(each: (value: V, key: K) => void): void },
  run: (value: V, key: K) => Promise<void> | undefined,
): Promise<void> | undefined {
  /** A failure thrown before any run awaited: the first in key order whatever the awaiting runs do. */
  let failedFirst: { error: unknown } | undefined;
  /** The runs that await, in key order, with any failure thrown after the first of them (as a rejected promise). */
  let awaiting: Promise<void>[] | undefined;
  entries.forEach((value, key) => {
    let running: Promise<void> | undefined;
    try {
      running = run(value, key);
    } catch (error) {
      if (awaiting === undefined) failedFirst ??= { error };
      else awaiting.push(Promise.reject(error));
      return;
    }
    if (running !== undefined) (awaiting ??= []).push(running);
  });
  if (awaiting === undefined) {
    if (failedFirst !== undefined) throw failedFirst.error;
    return undefined;
  }
  return Promise.allSettled(awaiting).then((settled) => {
    if (failedFirst !== undefined) throw failedFirst.error;
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });
}
