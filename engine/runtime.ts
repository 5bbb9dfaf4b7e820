/**
 * The actor runtime: owns one PartitionWorker per assigned partition, routes batches to them,
 * checkpoints them on an interval, and answers read-only state lookups for queries.
 */
import type { AnyActorLogic } from "./actor.ts";
import type { PartitionListener, RecordBatch, TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import { DEFAULT_BACKOFF, PartitionWorker, type WorkerDeps } from "./partition_worker.ts";
import { StatePacker } from "./state_packer.ts";

/** Runtime settings and collaborators; `logics` maps each consumed topic to its actor type. */
export interface RuntimeDeps extends Omit<WorkerDeps, "logic"> {
  readonly logics: ReadonlyMap<string, AnyActorLogic>;
  /** Period of the housekeeping round: timers, checkpoints, passivation. */
  readonly checkpointIntervalMs: number;
  /** Actors kept in memory across all partitions; beyond it the least recently used clean ones go. */
  readonly maxActors?: number;
  /** Clean actors unused for this long (wall ms) are passivated. */
  readonly actorIdleMs?: number;
  /** Clean actors unused for this long (wall ms) are packed; 0 never packs. */
  readonly actorPackMs?: number;
  /** Wait before claiming again a partition still assigned here whose worker was fenced off (wall ms). */
  readonly reclaimAfterFenceMs?: number;
}

const DEFAULT_ACTOR_IDLE_MS = 5 * 60_000;
/** Packing time per partition per housekeeping round; other work runs between partitions. */
const PACK_BUDGET_MS = 10;
/**
 * Long enough for the consumer to hear of a rebalance at its next heartbeat (Kafka's: every
 * second) before a fenced-off partition is claimed again: a rebalance that gave it to another
 * instance revokes it here instead, and the claim does not take it back from its new owner.
 */
const DEFAULT_RECLAIM_AFTER_FENCE_MS = 3_000;

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
  #stopped = false;
  /**
   * Partitions assigned here whose claim failed (the database down during a rebalance): housekeeping
   * claims them again, with backoff, until they are revoked. Retrying inside the assignment instead
   * held up the group's next assignment (a revocation could not get through, and a stop hung).
   * Partitions whose worker was fenced off while still assigned here wait in it too.
   */
  readonly #unclaimed = new Map<string, { readonly tp: TopicPartition; failures: number; retryAt: number }>();

  constructor(deps: RuntimeDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ component: "runtime" });
  }

  /** Starts the periodic housekeeping round. */
  start(): void {
    let running = false;
    this.#timer = setInterval(() => {
      if (running) return;
      running = true;
      this.housekeep().catch((error) => this.#log.warn("housekeeping failed", { error })).finally(() => {
        running = false;
      });
    }, this.#deps.checkpointIntervalMs);
  }

  /** One round: fire due timers and expire, checkpoint every partition, then passivate and pack the idle. */
  async housekeep(): Promise<void> {
    await this.#retryClaims();
    const workers = [...this.#workers.values()];
    await Promise.all(workers.map(async (worker) => {
      await worker.tick();
      await worker.checkpoint().catch((error) => this.#log.warn("periodic checkpoint failed", { error }));
    }));
    this.#requeueFenced();
    const total = workers.reduce((n, w) => n + w.size, 0);
    const excess = Math.max(0, total - (this.#deps.maxActors ?? Number.MAX_SAFE_INTEGER));
    const wall = (this.#deps.wallClock ?? Date.now)();
    const idleBefore = wall - (this.#deps.actorIdleMs ?? DEFAULT_ACTOR_IDLE_MS);
    await Promise.all(workers.map((w) => w.passivate(idleBefore, total > 0 ? Math.ceil(excess * w.size / total) : 0)));
    const packMs = this.#deps.actorPackMs ?? 0;
    for (const worker of packMs > 0 ? workers : []) {
      await worker.pack(wall - packMs, PACK_BUDGET_MS);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    this.#deps.instrumentation?.emit({ type: "actors_in_memory", count: this.actorCount, packed: this.packedCount });
    this.#deps.instrumentation?.emit({ type: "partitions_owned", count: this.#workers.size });
  }

  /** Checkpoints every partition, then passivates every clean actor; returns how many left memory. */
  async passivateAll(): Promise<number> {
    const workers = [...this.#workers.values()];
    await Promise.all(workers.map((w) => w.checkpoint()));
    const counts = await Promise.all(workers.map((w) => w.passivate(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)));
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
    await Promise.all(partitions.map(async (tp) => {
      if (!this.#deps.logics.has(tp.topic)) throw new Error(`no actor logic for topic ${tp.topic}`);
      const worker = await this.#claim(tp);
      if (worker) {
        this.#unclaimed.delete(tpKey(tp));
        offsets.set(tpKey(tp), worker.checkpointedOffset);
      } else this.#unclaimed.set(tpKey(tp), { tp, failures: 1, retryAt: performance.now() + this.#backoff(0) });
    }));
    return offsets;
  }

  gaveUp(tp: TopicPartition): boolean {
    return this.#workers.get(tpKey(tp))?.active === false;
  }

  async revoked(partitions: readonly TopicPartition[]): Promise<void> {
    await Promise.all(partitions.map(async (tp) => {
      this.#unclaimed.delete(tpKey(tp));
      const worker = this.#workers.get(tpKey(tp));
      this.#workers.delete(tpKey(tp));
      await worker?.close();
    }));
  }

  async batch(batch: RecordBatch, heartbeat: () => Promise<void>): Promise<void> {
    const worker = this.#workers.get(tpKey(batch));
    if (!worker || !worker.active) return;
    await worker.handleBatch(batch, heartbeat);
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

  /** Claims a partition and adds its worker; undefined if the claim failed (logged) or the runtime stopped meanwhile. */
  async #claim(tp: TopicPartition): Promise<PartitionWorker | undefined> {
    const logic = this.#deps.logics.get(tp.topic)!;
    let worker: PartitionWorker;
    try {
      worker = await PartitionWorker.claim(tp, { ...this.#deps, logic, packer: this.#packer });
    } catch (error) {
      this.#log.warn("cannot claim the partition; housekeeping tries again", { partition: tpKey(tp), error });
      return undefined;
    }
    if (this.#stopped) {
      await worker.close();
      return undefined;
    }
    this.#workers.set(tpKey(tp), worker);
    return worker;
  }

  /** Claims again the partitions whose claim failed, each when its backoff is over; reads each from its checkpoint. */
  async #retryClaims(): Promise<void> {
    const now = performance.now();
    await Promise.all(
      [...this.#unclaimed].filter(([, u]) => u.retryAt <= now).map(async ([key, unclaimed]) => {
        const worker = await this.#claim(unclaimed.tp);
        if (this.#unclaimed.get(key) !== unclaimed) {
          // Revoked while claiming: give it back at once.
          if (worker && this.#workers.get(key) === worker) this.#workers.delete(key);
          await worker?.close();
          return;
        }
        if (!worker) {
          unclaimed.retryAt = performance.now() + this.#backoff(unclaimed.failures++);
          return;
        }
        this.#unclaimed.delete(key);
        this.#deps.consumer.seek(unclaimed.tp, worker.checkpointedOffset);
      }),
    );
  }

  /**
   * A worker fenced off by a newer owner gives its partition up, yet the group may still assign that
   * partition here: this instance stalled past its session, the group handed the partition to
   * another and, once it rejoined, back to it, before the worker noticed. Nothing would claim it
   * again and it would stand still, so it is claimed again after a wait; a revocation meanwhile
   * drops it.
   */
  #requeueFenced(): void {
    for (const [key, worker] of this.#workers) {
      if (worker.active) continue;
      this.#workers.delete(key);
      const delay = this.#deps.reclaimAfterFenceMs ?? DEFAULT_RECLAIM_AFTER_FENCE_MS;
      this.#unclaimed.set(key, { tp: worker.topicPartition, failures: 0, retryAt: performance.now() + delay });
      this.#log.warn("partition fenced off while still assigned here; claiming it again unless it is revoked", {
        partition: key,
        delayMs: delay,
      });
    }
  }

  #backoff(failures: number): number {
    const { initial, max } = this.#deps.retryBackoffMs ?? DEFAULT_BACKOFF;
    return Math.min(initial * 2 ** failures, max);
  }

  /** Stops checkpointing on a timer and releases every partition with a final checkpoint. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unclaimed.clear();
    clearInterval(this.#timer);
    const workers = [...this.#workers.values()];
    this.#workers.clear();
    await Promise.all(workers.map((w) => w.close()));
  }
}
