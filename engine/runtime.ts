/**
 * The actor runtime: owns one PartitionWorker per assigned partition, routes batches to them,
 * checkpoints them on an interval, and answers read-only state lookups for queries.
 */
import { GLOBAL_KEY } from "../actors/global.ts";
import type { AnyActorLogic } from "./actor.ts";
import { ALERT_PRUNE_BATCH } from "./checkpoint.ts";
import { ensureError } from "./errors.ts";
import type { PartitionListener, RecordBatch, TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import { lruCuts } from "./lru_cut.ts";
import { DEFAULT_BACKOFF, PartitionWorker, type WorkerDeps } from "./partition_worker.ts";
import type { ClockSource } from "./source_watermark.ts";
import { StatePacker } from "./state_packer.ts";
import { settledWithin } from "./settled_within.ts";

/** Runtime settings and collaborators; `logics` maps each consumed topic to its actor type. */
export interface RuntimeDeps extends Omit<WorkerDeps, "logic" | "source" | "watermarks"> {
  readonly logics: ReadonlyMap<string, AnyActorLogic>;
  /** Period of the housekeeping round: timers, checkpoints, passivation. */
  readonly checkpointIntervalMs: number;
  /** Actors kept in memory across all partitions; beyond it the least recently used clean ones go. */
  readonly maxActors?: number;
  /** Clean actors unused for this long (wall ms) are passivated. */
  readonly actorIdleMs?: number;
  /** Clean actors unused for this long (wall ms) are packed; 0 never packs. */
  readonly actorPackMs?: number;
  /** Stored alerts are deleted this long after they were stored (the store's clock); 0 keeps them. */
  readonly alertRetentionMs?: number;
}

const DEFAULT_ACTOR_IDLE_MS = 5 * 60_000;
/**
 * Longest a stop waits, before leaving the group, for the claims, housekeeping round and batches in progress and the
 * final checkpoints; within main.ts's 10 s deadline with the HTTP drain and the group's leave.
 */
export const FINAL_CHECKPOINTS_MS = 3_000;
/** Longest a stop waits, once the group is left, for the partitions' release (their last checkpoint attempts). */
export const RELEASE_MS = 1_000;
/** Packing time per partition per housekeeping round; other work runs between partitions. */
const PACK_BUDGET_MS = 10;
/** How often housekeeping starts a pruning of the stored alerts past their retention. */
const ALERT_PRUNE_INTERVAL_MS = 60_000;

/** A partition assigned here without a worker: its claim failed, or its worker was fenced off. */
interface Unclaimed {
  readonly tp: TopicPartition;
  failures: number;
  retryAt: number;
  /**
   * When it lost its worker or failed its claim (performance.now() ms). It is claimed again only once the group has
   * confirmed this member's assignment since: meanwhile the group may have given it to another instance, whose
   * claim a retry here would fence off, and kafkajs reports that revocation only after the assignment handled before.
   */
  readonly since: number;
}

/** A live actor state found in this instance's memory. */
export interface LiveState {
  readonly state: unknown;
  readonly partition: number;
}

/** Implements the consumer's PartitionListener on top of partition workers. */
export class ActorRuntime implements PartitionListener {
  readonly #deps: RuntimeDeps;
  readonly #log: Logger;
  readonly #workers = new Map<string, PartitionWorker>();
  /** One key table for every partition's packed actors. */
  readonly #packer = new StatePacker();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The housekeeping round the timer started, while it runs. */
  #round: Promise<void> | undefined;
  /** Set once the runtime stops: no housekeeping round starts after its final checkpoints. */
  #housekeepingStopped = false;
  #stopped = false;
  /**
   * Partitions assigned here whose claim failed (the database down during a rebalance): housekeeping
   * claims them again, with backoff, until they are revoked. Retrying inside the assignment instead
   * held up the group's next assignment (a revocation could not get through, and a stop hung).
   * Partitions whose worker was fenced off while still assigned here wait in it too.
   */
  readonly #unclaimed = new Map<string, Unclaimed>();
  /** Partitions the consumer has assigned here and not revoked since. */
  readonly #assignedNow = new Set<string>();
  /** Claims in flight by partition: an assignment and a retry never claim the same partition twice. */
  readonly #claiming = new Map<string, Promise<PartitionWorker | undefined>>();
  /** Times each partition was fenced off since it was assigned here, for the backoff. */
  readonly #fences = new Map<string, number>();
  /** Set once the consumer is about to leave the group: its partitions go elsewhere, none is claimed. */
  #leaving = false;
  /** The alert pruning in flight, started by housekeeping beside its rounds. */
  #pruning: Promise<void> | undefined;
  /** Wall time the last alert pruning started. */
  #alertsPrunedAt = Number.NEGATIVE_INFINITY;
  /** The passivation beyond MAX_ACTORS a batch started, while it runs (one at a time). */
  #passivating: Promise<unknown> | undefined;

  constructor(deps: RuntimeDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "runtime" });
  }

  /** Starts the periodic housekeeping round. */
  start(): void {
    this.#timer = setInterval(() => {
      if (this.#round) return;
      this.#round = this.housekeep().catch((error) => this.#log.warn("housekeeping failed", { error })).finally(() => {
        this.#round = undefined;
      });
    }, this.#deps.checkpointIntervalMs);
  }

  /**
   * One round: fire due timers and expire, checkpoint every partition, then passivate and pack the idle. None once the
   * runtime is stopping: its final checkpoints are the last, and nothing it appends comes after them.
   */
  async housekeep(): Promise<void> {
    if (this.#housekeepingStopped) return;
    this.#startAlertPruning();
    await this.#retryClaims();
    const workers = [...this.#workers.values()];
    await Promise.all(workers.map(async (worker) => {
      await worker.tick();
      await worker.checkpoint().catch((error) => this.#log.warn("periodic checkpoint failed", { error }));
      await worker.alignGroupOffset();
    }));
    this.#requeueFenced();
    const total = workers.reduce((n, w) => n + w.size, 0);
    const excess = Math.max(0, total - (this.#deps.maxActors ?? Number.MAX_SAFE_INTEGER));
    const wall = (this.#deps.wallClock ?? Date.now)();
    const idleBefore = wall - (this.#deps.actorIdleMs ?? DEFAULT_ACTOR_IDLE_MS);
    // Beyond MAX_ACTORS, the instance's least recently used clean actors, wherever they are.
    const cuts = excess > 0 ? lruCuts(workers.map((w) => w.cleanUseTimes()), excess) : undefined;
    await Promise.all(workers.map((w, i) => w.passivate(idleBefore, cuts?.[i])));
    const packMs = this.#deps.actorPackMs ?? 0;
    for (const worker of packMs > 0 ? workers : []) {
      await worker.pack(wall - packMs, PACK_BUDGET_MS);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    this.#deps.instrumentation?.emit({ type: "actors_in_memory", count: this.actorCount, packed: this.packedCount });
    this.#deps.instrumentation?.emit({ type: "partitions_owned", count: this.#workers.size });
  }

  /**
   * Once a minute, starts deleting the stored alerts past their retention, without waiting for it: a backlog takes
   * many batches, and the checkpoints of this round and the next ones go on meanwhile.
   */
  #startAlertPruning(): void {
    const retention = this.#deps.alertRetentionMs ?? 0;
    const wall = (this.#deps.wallClock ?? Date.now)();
    if (retention <= 0 || this.#stopped || this.#pruning || wall - this.#alertsPrunedAt < ALERT_PRUNE_INTERVAL_MS) {
      return;
    }
    this.#alertsPrunedAt = wall;
    this.#pruning = this.pruneAlerts(retention)
      .then((count) => {
        if (count > 0) this.#log.info("deleted stored alerts past their retention", { count });
      }, (error) => this.#log.warn("alert pruning failed; retrying in a minute", { error: ensureError(error) }))
      .finally(() => this.#pruning = undefined);
  }

  /**
   * Deletes every stored alert past `retentionMs`, a batch of ALERT_PRUNE_BATCH per statement, yielding between them,
   * until a batch comes back short (or the runtime stops); returns how many.
   */
  async pruneAlerts(retentionMs: number): Promise<number> {
    let total = 0;
    for (;;) {
      const count = await this.#deps.store.pruneAlerts(retentionMs, ALERT_PRUNE_BATCH);
      total += count;
      if (count < ALERT_PRUNE_BATCH || this.#stopped) return total;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** Resolves once the alert pruning housekeeping started, if any, has ended. */
  get alertPruning(): Promise<void> {
    return this.#pruning ?? Promise.resolve();
  }

  /** Checkpoints every partition, then passivates every clean actor; returns how many left memory. */
  async passivateAll(): Promise<number> {
    const workers = [...this.#workers.values()];
    await Promise.all(workers.map((w) => w.checkpoint()));
    const counts = await Promise.all(workers.map((w) => w.passivate(Number.MAX_SAFE_INTEGER)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Packed (idle) actors across all partitions. */
  get packedCount(): number {
    let n = 0;
    for (const w of this.#workers.values()) n += w.packedCount;
    return n;
  }

  /** Actors in memory across all partitions. */
  get actorCount(): number {
    let n = 0;
    for (const w of this.#workers.values()) n += w.size;
    return n;
  }

  async assigned(partitions: readonly TopicPartition[]): Promise<Map<string, number>> {
    const offsets = new Map<string, number>();
    if (this.#leaving) return offsets;
    await Promise.all(partitions.map(async (tp) => {
      if (!this.#deps.logics.has(tp.topic)) throw new Error(`no actor logic for topic ${tp.topic}`);
      const key = tpKey(tp);
      this.#assignedNow.add(key);
      const worker = await this.#claim(tp);
      if (worker) {
        this.#unclaimed.delete(key);
        offsets.set(key, worker.checkpointedOffset);
      } else {
        const now = performance.now();
        this.#unclaimed.set(key, { tp, failures: 1, retryAt: now + this.#backoff(0), since: now });
      }
    }));
    return offsets;
  }

  gaveUp(tp: TopicPartition): boolean {
    return this.#workers.get(tpKey(tp))?.active === false;
  }

  async revoked(partitions: readonly TopicPartition[]): Promise<void> {
    await Promise.all(partitions.map(async (tp) => {
      const key = tpKey(tp);
      // A claim still in flight sees this and gives the partition back itself.
      this.#assignedNow.delete(key);
      this.#unclaimed.delete(key);
      this.#fences.delete(key);
      const worker = this.#workers.get(key);
      this.#workers.delete(key);
      await worker?.close();
    }));
  }

  async batch(batch: RecordBatch, heartbeat: () => Promise<void>): Promise<void> {
    const worker = this.#workers.get(tpKey(batch));
    if (!worker || !worker.active) return;
    await worker.handleBatch(batch, heartbeat);
    this.#passivateExcess();
  }

  /**
   * Beyond MAX_ACTORS after a batch, starts passivating the instance's least recently used checkpointed actors (as the
   * round does) without waiting for the next round: a backlog of new keys, checkpointed every CHECKPOINT_MAX_MESSAGES,
   * otherwise kept every actor it activated until then, however long CHECKPOINT_INTERVAL_MS. Not waited for: another
   * partition's passivation waits for its step in progress (a checkpoint retried through an outage, say).
   */
  #passivateExcess(): void {
    const max = this.#deps.maxActors;
    if (max === undefined || this.#passivating || this.actorCount <= max) return;
    const workers = [...this.#workers.values()];
    const cuts = lruCuts(workers.map((w) => w.cleanUseTimes()), this.actorCount - max);
    if (cuts.every((cut) => cut.usedAt === Number.NEGATIVE_INFINITY)) return; // none checkpointed yet
    this.#passivating = Promise.all(workers.map((w, i) => w.passivate(Number.NEGATIVE_INFINITY, cuts[i])))
      .finally(() => this.#passivating = undefined);
  }

  /** Finds a key's state in memory, across the partitions of the topic that feeds `kind`. */
  lookup(kind: string, key: string): LiveState | undefined {
    for (const worker of this.#workers.values()) {
      const { topic, partition } = worker.topicPartition;
      if (this.#deps.logics.get(topic)?.kind !== kind) continue;
      const state = worker.peek(key);
      if (state !== undefined) return { state, partition };
    }
    return undefined;
  }

  /** Partitions this instance owns now. */
  owned(): string[] {
    return [...this.#workers.keys()].sort();
  }

  /**
   * Claims a partition and adds its worker; undefined if the claim failed (logged), or the partition
   * was revoked or the runtime stopped meanwhile. A claim already in flight for it is joined.
   */
  #claim(tp: TopicPartition): Promise<PartitionWorker | undefined> {
    const key = tpKey(tp);
    let claiming = this.#claiming.get(key);
    if (!claiming) {
      claiming = this.#claimOnce(tp).finally(() => this.#claiming.delete(key));
      this.#claiming.set(key, claiming);
    }
    return claiming;
  }

  async #claimOnce(tp: TopicPartition): Promise<PartitionWorker | undefined> {
    const key = tpKey(tp);
    const logic = this.#deps.logics.get(tp.topic)!;
    let worker: PartitionWorker;
    try {
      worker = await PartitionWorker.claim(tp, {
        ...this.#deps,
        logic,
        packer: this.#packer,
        source: this.#sourceOf(tp),
        watermarks: this.#watermarksOf(tp),
        ...this.#timerBounds(),
      });
    } catch (error) {
      this.#log.warn("cannot claim the partition; housekeeping tries again", { partition: key, error });
      return undefined;
    }
    if (this.#stopped || this.#leaving || !this.#assignedNow.has(key)) {
      await worker.close();
      return undefined;
    }
    const displaced = this.#workers.get(key);
    this.#workers.set(key, worker);
    await displaced?.close();
    return worker;
  }

  /**
   * Timers due at once fire in slices of each partition's share of MAX_ACTORS, so that partitions firing together stay
   * within about twice it; before each slice the partition's least recently used checkpointed actors make room for it,
   * and after it the actors it loaded go again while the instance is beyond it.
   */
  #timerBounds(): Pick<WorkerDeps, "timerSlice" | "actorExcess"> {
    const max = this.#deps.maxActors;
    if (max === undefined) return {};
    return {
      timerSlice: () => Math.max(1, Math.floor(max / Math.max(1, this.#workers.size))),
      actorExcess: () => this.actorCount - max,
    };
  }

  /**
   * The analytics partition hears of events only through the `events` partitions' checkpoints (their user actors'
   * facts), which may be owned by other instances: its idle clock waits for them (engine/source_watermark.ts).
   */
  #sourceOf(tp: TopicPartition): ClockSource | undefined {
    const { topics, partitionCounts } = this.#deps;
    const partitions = partitionCounts?.get(topics.events);
    return tp.topic === topics.analytics && partitions !== undefined ? { topic: topics.events, partitions } : undefined;
  }

  /** An `events` partition publishes its clock to the analytics partition after its facts (WorkerDeps.watermarks). */
  #watermarksOf(tp: TopicPartition): WorkerDeps["watermarks"] {
    const { topics, partitionCounts } = this.#deps;
    const partitions = partitionCounts?.get(topics.events);
    return tp.topic === topics.events && partitions !== undefined
      ? { topic: topics.analytics, key: GLOBAL_KEY, partitions }
      : undefined;
  }

  /**
   * Claims again the partitions assigned here without a worker, each when its backoff is over and
   * the group has confirmed the assignment since it lost its worker or failed its claim; reads each
   * from its checkpoint.
   */
  async #retryClaims(): Promise<void> {
    if (this.#leaving) return;
    const now = performance.now();
    const { consumer } = this.#deps;
    const due = [...this.#unclaimed].filter(([, u]) =>
      u.retryAt <= now && (consumer.assignmentConfirmedSince?.(u.since) ?? true)
    );
    await Promise.all(due.map(async ([key, unclaimed]) => {
      const worker = await this.#claim(unclaimed.tp);
      // Revoked meanwhile (the claim gave it back), or claimed by a new assignment (whose worker stands).
      if (this.#unclaimed.get(key) !== unclaimed) return;
      if (!worker) {
        unclaimed.retryAt = performance.now() + this.#backoff(unclaimed.failures++);
        return;
      }
      this.#unclaimed.delete(key);
      consumer.seek(unclaimed.tp, worker.checkpointedOffset);
    }));
  }

  /**
   * A worker fenced off by a newer owner gives its partition up, yet the group may still assign that
   * partition here: this instance stalled past its session, the group handed the partition to
   * another and, once it rejoined, back to it, before the worker noticed. Nothing else would claim it
   * again and it would stand still. It is claimed again once the group has confirmed, after the
   * fence, that this member's assignment is current (Kafka: heartbeats answered, no rebalance
   * pending): if the group gave it to another instance, it is revoked here first instead. Repeated
   * fences of one partition back off.
   */
  #requeueFenced(): void {
    if (this.#leaving) return;
    for (const [key, worker] of this.#workers) {
      if (worker.active) continue;
      this.#workers.delete(key);
      const fences = (this.#fences.get(key) ?? 0) + 1;
      this.#fences.set(key, fences);
      const now = performance.now();
      this.#unclaimed.set(key, {
        tp: worker.topicPartition,
        failures: fences,
        retryAt: now + this.#backoff(fences - 1),
        since: now,
      });
      this.#log.warn("partition fenced off while still assigned here; claiming it again once the group confirms", {
        partition: key,
        fences,
      });
    }
  }

  /**
   * Claims nothing more, and waits for claims in flight to give their partitions back: the consumer
   * is about to leave the group, and its partitions go elsewhere.
   */
  async stopClaiming(): Promise<void> {
    this.#leaving = true;
    this.#unclaimed.clear();
    await Promise.all(this.#claiming.values());
  }

  #backoff(failures: number): number {
    const { initial, max } = this.#deps.retryBackoffMs ?? DEFAULT_BACKOFF;
    return Math.min(initial * 2 ** failures, max);
  }

  /**
   * The engine's graceful stop: no new claims, no more housekeeping; the consumer's batches drained; a final
   * checkpoint of every partition while this member still holds it, so that the next owner resumes from it (claiming
   * after the group was left, it fenced these checkpoints off and replayed, and published again, up to a checkpoint
   * interval); then the group left and every partition released.
   */
  async shutdown(): Promise<void> {
    this.#stopRetrying();
    const { consumer } = this.#deps;
    const beforeLeaving = (async () => {
      await this.stopClaiming();
      await this.#stopHousekeeping();
      if (!consumer.quiesce) return;
      await consumer.quiesce();
      await Promise.all(
        [...this.#workers].map(([key, worker]) =>
          worker.checkpoint().catch((error) =>
            this.#log.warn("final checkpoint before leaving the group failed; retried at release", {
              partition: key,
              error,
            })
          )
        ),
      );
    })();
    // A database that stops answering held every one of these steps (claims, the housekeeping round, the batches
    // being handled, the checkpoints) and the stop ran into main.ts's deadline without leaving the group.
    if (!await settledWithin(beforeLeaving, FINAL_CHECKPOINTS_MS)) {
      this.#log.warn("final checkpoints did not finish in time; leaving the group without them", {
        timeoutMs: FINAL_CHECKPOINTS_MS,
      });
    }
    await consumer.stop();
    if (!await settledWithin(this.stop(), RELEASE_MS)) {
      this.#log.warn("releasing the partitions did not finish in time; stopping anyway", { timeoutMs: RELEASE_MS });
    }
  }

  /**
   * No further housekeeping round, and the one in progress ended: a round after the final checkpoints would advance
   * idle clocks, fire timers and checkpoint again, publishing after them (a claim's first watermark, say) and after
   * the group was left.
   */
  async #stopHousekeeping(): Promise<void> {
    this.#housekeepingStopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  /**
   * Every partition is about to be released: none waits out a failure any longer (the housekeeping round and the
   * batches a stop waits for would otherwise wait for the end of a database outage).
   */
  #stopRetrying(): void {
    for (const worker of this.#workers.values()) worker.stopRetrying();
  }

  /** Stops checkpointing on a timer and releases every partition with a final checkpoint. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopRetrying();
    this.#unclaimed.clear();
    await this.#stopHousekeeping();
    const workers = [...this.#workers.values()];
    this.#workers.clear();
    await Promise.all([...workers.map((w) => w.close()), this.#pruning]);
  }
}
