/**
 * One partition's actors. Messages of one key run one at a time in offset order; different keys
 * run concurrently. A checkpoint publishes the outputs the handled messages caused, then writes
 * the dirty states and the partition's next offset in one transaction, fenced by the owner epoch.
 */
import type { ActorContext, AnyActorLogic, OutputTopic } from "./actor.ts";
import type { CheckpointStore } from "./checkpoint.ts";
import { EngineError, ensureError, TerminalError, ValidationError } from "./errors.ts";
import type { LogConsumer, LogProducer, LogRecord, OutgoingRecord, RecordBatch, TopicPartition } from "./log.ts";
import type { Logger } from "./logger.ts";
import type { Topics } from "./config.ts";
import { deadLetter } from "./dead_letter.ts";

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
  /** Delay before retrying after a transient failure; doubles up to the maximum. */
  readonly retryBackoffMs?: { readonly initial: number; readonly max: number };
}

interface Cell {
  state: unknown;
  dirty: boolean;
}

const DEFAULT_BACKOFF = { initial: 100, max: 5_000 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The actors and progress of one owned partition. */
export class PartitionWorker {
  readonly #tp: TopicPartition;
  readonly #deps: WorkerDeps;
  readonly #log: Logger;
  readonly #cells = new Map<string, Cell>();
  #epoch: number;
  /** Next offset to handle. */
  #position: number;
  /** Next offset as recorded in the last committed checkpoint. */
  #checkpointed: number;
  #outputs: OutgoingRecord[] = [];
  #sinceCheckpoint = 0;
  #clock = 0;
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Consecutive failures, for exponential backoff. */
  #failures = 0;

  private constructor(tp: TopicPartition, deps: WorkerDeps, epoch: number, nextOffset: number) {
    this.#tp = tp;
    this.#deps = deps;
    this.#epoch = epoch;
    this.#position = nextOffset;
    this.#checkpointed = nextOffset;
    this.#log = deps.logger.child({ topic: tp.topic, partition: tp.partition });
  }

  /** Claims the partition in the database (fencing any previous owner) and resumes at its checkpoint. */
  static async claim(tp: TopicPartition, deps: WorkerDeps): Promise<PartitionWorker> {
    const claimed = await deps.store.claim(tp, deps.groupId, deps.owner);
    const worker = new PartitionWorker(tp, deps, claimed.epoch, claimed.nextOffset);
    worker.#log.info("partition claimed", { epoch: claimed.epoch, nextOffset: claimed.nextOffset });
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

  /** False once the partition was revoked, fenced off, or stopped. */
  get active(): boolean {
    return !this.#closed;
  }

  /** Runs `fn` after everything queued before it; batches and checkpoints never overlap. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Handles a batch; returns once its messages are applied (and checkpointed, if one was due). */
  handleBatch(batch: RecordBatch, heartbeat: () => Promise<void>): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      const records = batch.records.filter((r) => r.offset >= this.#position);
      if (records.length === 0) return;
      if (records[0].offset > this.#position) {
        this.#log.warn("gap before batch; seeking back to the next unhandled offset", {
          expected: this.#position,
          got: records[0].offset,
        });
        this.#deps.consumer.seek(this.#tp, this.#position);
        return;
      }
      await this.#applyOrRewind(records);
      if (this.#sinceCheckpoint >= this.#deps.checkpointMaxMessages) await this.#checkpointUntilDone(heartbeat);
    });
  }

  /** Writes a checkpoint if anything changed since the last one. */
  checkpoint(): Promise<void> {
    return this.#serial(() => this.#checkpoint());
  }

  /** Final checkpoint (best effort), then forgets the partition's actors. */
  close(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      try {
        await this.#checkpoint();
      } catch (error) {
        this.#log.warn("final checkpoint failed; the next owner resumes from the previous one", { error });
      }
      this.#closed = true;
      this.#cells.clear();
      this.#log.info("partition released", { nextOffset: this.#checkpointed });
    });
  }

  /** The persisted form of a key's live state, if this partition holds it in memory. */
  peek(key: string): unknown | undefined {
    const cell = this.#cells.get(key);
    return cell ? this.#deps.logic.persist(cell.state) : undefined;
  }

  /** Applies records; a transient failure discards everything since the last checkpoint and re-reads from there. */
  async #applyOrRewind(records: readonly LogRecord[]): Promise<void> {
    try {
      await this.#apply(records);
      this.#failures = 0;
    } catch (error) {
      const delay = this.#backoff();
      this.#log.error("handling failed; rewinding to the last checkpoint", { error: ensureError(error), delay });
      this.#rewind();
      await sleep(delay);
    }
  }

  /** Checkpoints until it succeeds or the partition is lost; consumption of this partition waits meanwhile. */
  async #checkpointUntilDone(heartbeat: () => Promise<void>): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#checkpoint();
        this.#failures = 0;
        return;
      } catch (error) {
        const delay = this.#backoff();
        this.#log.error("checkpoint failed; retrying", { error: ensureError(error), delay });
        await sleep(delay);
        await heartbeat().catch(() => {});
      }
    }
  }

  #backoff(): number {
    const { initial, max } = this.#deps.retryBackoffMs ?? DEFAULT_BACKOFF;
    return Math.min(initial * 2 ** this.#failures++, max);
  }

  /** Drops uncheckpointed work and re-reads the log from the checkpoint. */
  #rewind(): void {
    this.#cells.clear();
    this.#outputs = [];
    this.#sinceCheckpoint = 0;
    this.#position = this.#checkpointed;
    this.#deps.consumer.seek(this.#tp, this.#checkpointed);
  }

  async #apply(records: readonly LogRecord[]): Promise<void> {
    const { logic } = this.#deps;
    const byKey = new Map<string, { record: LogRecord; message: unknown }[]>();
    for (const record of records) {
      let message: unknown;
      try {
        if (record.key === null) throw new ValidationError("record has no key");
        message = logic.decode(record);
      } catch (error) {
        // Decoding is pure: whatever it throws, the record can never be handled.
        const reason = error instanceof EngineError ? error : new ValidationError(ensureError(error).message);
        this.#outputs.push(deadLetter(this.#deps.topics.dlq, record, reason));
        this.#log.warn("record dead-lettered", { offset: record.offset, error: reason });
        continue;
      }
      const list = byKey.get(record.key!) ?? [];
      list.push({ record, message });
      byKey.set(record.key!, list);
    }
    await this.#activate([...byKey.keys()].filter((key) => !this.#cells.has(key)));
    await Promise.all([...byKey].map(([key, items]) => this.#runKey(key, items)));
    this.#position = records[records.length - 1].offset + 1;
    this.#sinceCheckpoint += records.length;
  }

  /** Loads the states of keys not in memory with one query. */
  async #activate(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const { logic, store } = this.#deps;
    const stored = await store.load(logic.kind, keys);
    for (const key of keys) {
      const data = stored.get(key);
      this.#cells.set(key, { state: data === undefined ? logic.initial(key) : logic.restore(data), dirty: false });
    }
  }

  async #runKey(key: string, items: readonly { record: LogRecord; message: unknown }[]): Promise<void> {
    const { logic } = this.#deps;
    const cell = this.#cells.get(key)!;
    for (const { record, message } of items) {
      this.#clock = Math.max(this.#clock, logic.eventTime(message) || 0);
      const emitted: OutgoingRecord[] = [];
      const ctx = this.#context(record, emitted);
      try {
        cell.state = await logic.handle(cell.state, message, ctx);
        cell.dirty = true;
        this.#outputs.push(...emitted);
      } catch (error) {
        if (!(error instanceof TerminalError)) throw error;
        this.#outputs.push(deadLetter(this.#deps.topics.dlq, record, error));
        this.#log.warn("handler rejected record", { key, offset: record.offset, error });
      }
    }
  }

  #context(record: LogRecord, emitted: OutgoingRecord[]): ActorContext {
    const topics = this.#deps.topics;
    const names: Record<OutputTopic, string> = {
      alerts: topics.alerts,
      recommendations: topics.recommendations,
      productEvents: topics.productEvents,
    };
    return {
      now: () => this.#clock,
      emit: (topic, key, value) => emitted.push({ topic: names[topic], key, value: JSON.stringify(value) }),
      outputId: (rule) => `${record.topic}-${record.partition}-${record.offset}-${rule}`,
    };
  }

  async #checkpoint(): Promise<void> {
    if (this.#closed) return;
    const dirty = [...this.#cells].filter(([, cell]) => cell.dirty);
    if (dirty.length === 0 && this.#position === this.#checkpointed && this.#outputs.length === 0) return;
    const started = performance.now();
    const { store, producer, logic, groupId } = this.#deps;
    await producer.append(this.#outputs);
    this.#outputs = [];
    const position = this.#position;
    const states = dirty.map(([key, cell]) => ({ key, state: logic.persist(cell.state) }));
    const owned = await store.commit(this.#tp, groupId, this.#epoch, position, logic.kind, states);
    if (!owned) {
      this.#log.warn("checkpoint fenced off: another instance owns this partition now", { epoch: this.#epoch });
      this.#closed = true;
      this.#cells.clear();
      return;
    }
    for (const [, cell] of dirty) cell.dirty = false;
    this.#checkpointed = position;
    this.#sinceCheckpoint = 0;
    this.#log.debug("checkpoint", {
      nextOffset: position,
      states: states.length,
      ms: Math.round(performance.now() - started),
    });
    this.#deps.consumer.commit(this.#tp, position).catch((error) => {
      this.#log.debug("committing the group offset failed (lag reporting only)", { error });
    });
  }
}
