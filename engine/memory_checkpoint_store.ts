/**
 * Checkpoints in memory with the SQL store's fencing, expiry and projection rules, for unit tests of the runtime
 * (as memory_log.ts is the log's); never used in production.
 */
import type { CheckpointStore, CheckpointWrite, Claim, CommitResult, StoredActor } from "./checkpoint.ts";
import type { Alert, AnalyticsMinute, ProductMinute, Recommendation } from "./outputs.ts";
import type { TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";
import { partitionForKey } from "./partitioner.ts";
import { RECOMMENDED_KIND, type StoredParts } from "../sql/checkpoints.ts";

/** A memory partition row as the SQL store reads it back: `sourcesPublished` only when one is stored, `logGeneration` above 0. */
function claimOf(
  row: { epoch: number; nextOffset: number; clock: number; sourcesPublished?: number; logGeneration?: number },
): Claim {
  const claim = { epoch: row.epoch, nextOffset: row.nextOffset, clock: row.clock };
  const withGeneration = row.logGeneration ? { ...claim, logGeneration: row.logGeneration } : claim;
  return row.sourcesPublished === undefined
    ? withGeneration
    : { ...withGeneration, sourcesPublished: row.sourcesPublished };
}

/** An actor's parts field as the memory store holds it: its elements by key, as `actor_state_parts` does. */
interface MemoryParts {
  readonly field: string;
  readonly elements: ReadonlyMap<number, unknown>;
}

/** The stored parts after a checkpoint wrote `parts` over `before`, as `saveStates` leaves them. */
function writeParts(before: MemoryParts | undefined, parts: StoredParts): MemoryParts {
  const elements = new Map(parts.replace || before?.field !== parts.field ? [] : before.elements);
  for (const key of parts.deletes) elements.delete(key);
  for (const { key, data } of parts.upserts) elements.set(key, structuredClone(data));
  return { field: parts.field, elements };
}

/** A memory row's persisted form whole, its parts put back in key order, as `loadStates` reads it. */
function wholeState(row: MemoryRow): unknown {
  if (!row.parts) return structuredClone(row.state);
  const elements = [...row.parts.elements].sort(([a], [b]) => a - b).map(([, data]) => data);
  return structuredClone({ ...(row.state as Record<string, unknown>), [row.parts.field]: elements });
}

interface MemoryRow extends Omit<StoredActor, "parts"> {
  /** A field of the state stored apart (`state` lacks it), as written by checkpoints with parts. */
  readonly parts?: MemoryParts;
  readonly partition: number;
  /** The partition count that placed the key on `partition`, as `actor_states.partition_count` (absent: unknown). */
  readonly partitionCount?: number;
  readonly updatedAt: Date;
}

/** Checkpoints in memory with the same fencing and expiry rules, for unit tests. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly partitions = new Map<
    string,
    {
      epoch: number;
      nextOffset: number;
      clock: number;
      sourcesPublished?: number;
      logGeneration?: number;
      owner: string;
    }
  >();
  readonly rows = new Map<string, MemoryRow>();
  readonly alerts = new Map<string, Alert>();
  /** When each alert was stored (epoch ms, by `now`), as `alerts.created_at`; one put in `alerts` directly has none. */
  readonly alertsStoredAt = new Map<string, number>();
  readonly recommendations = new Map<string, Recommendation>();
  /** Stored analytics minutes by minute (epoch ms), as `analytics_minutes` holds them. */
  readonly analyticsMinutes = new Map<number, AnalyticsMinute>();
  /**
   * Stored product minutes by `productId/minute`, and `/category` when there is one, added up as `product_minutes`
   * holds them (keepFrom unused).
   */
  readonly productMinutes = new Map<string, ProductMinute & { partition: number }>();
  /** When set, every call fails with this error (to simulate a database outage). */
  failWith: Error | null = null;
  /** When true, the next commit is applied and then reported as failed (a lost reply), once. */
  loseNextReply = false;
  /** Commits for which this answers true fail without being applied (a transaction that did not land). */
  failCommitWhen: ((write: CheckpointWrite) => boolean) | null = null;
  /** Number of successful commits, for assertions. */
  commits = 0;
  /** Number of `load` calls, for asserting that activation is batched. */
  loads = 0;
  /** Number of parts elements written (upserted), for asserting that checkpoints write only those that changed. */
  partsWritten = 0;

  /** `now`: the store's clock (epoch ms), PostgreSQL's `now()` for the SQL store: when alerts are stored. */
  constructor(readonly now: () => number = Date.now) {}

  #check(): void {
    if (this.failWith) throw this.failWith;
  }

  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    this.#check();
    const id = `${groupId}/${tpKey(tp)}`;
    const row = this.partitions.get(id) ?? { epoch: 0, nextOffset: 0, clock: 0, owner };
    const next = { ...row, epoch: row.epoch + 1, owner };
    this.partitions.set(id, next);
    return Promise.resolve(claimOf(next));
  }

  load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
    this.#check();
    this.loads++;
    const out = new Map<string, StoredActor>();
    for (const key of keys) {
      const row = this.rows.get(`${kind}/${key}`);
      if (row) {
        out.set(key, { key, state: wholeState(row), timers: { ...row.timers }, lastActiveAt: row.lastActiveAt });
      }
    }
    return Promise.resolve(out);
  }

  stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    this.#check();
    const row = this.partitions.get(`${groupId}/${tpKey(tp)}`);
    return Promise.resolve(row ? claimOf(row) : null);
  }

  progress(topic: string, groupId: string): Promise<ReadonlyMap<number, Claim>> {
    this.#check();
    const out = new Map<number, Claim>();
    for (const [id, row] of this.partitions) {
      const at = id.lastIndexOf(":");
      if (id.slice(0, at) !== `${groupId}/${topic}`) continue;
      out.set(Number(id.slice(at + 1)), claimOf(row));
    }
    return Promise.resolve(out);
  }

  restartLog(tp: TopicPartition, groupId: string, epoch: number, nextOffset: number): Promise<number | null> {
    this.#check();
    const row = this.partitions.get(`${groupId}/${tpKey(tp)}`);
    if (!row || row.epoch !== epoch) return Promise.resolve(null);
    row.nextOffset = nextOffset;
    row.logGeneration = (row.logGeneration ?? 0) + 1;
    return Promise.resolve(row.logGeneration);
  }

  /** Commits here are applied at once, so nothing is ever still in flight. */
  settled(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    return this.stored(tp, groupId);
  }

  loadTimers(kind: string, partition?: number, partitions?: number): Promise<Map<string, Record<string, number>>> {
    this.#check();
    const out = new Map<string, Record<string, number>>();
    for (const [id, row] of this.rows) {
      const inPartition = partition === undefined ||
        (partitions === undefined || row.partitionCount === partitions
          ? row.partition === partition
          : partitionForKey(row.key, partitions) === partition);
      if (id.startsWith(`${kind}/`) && inPartition && Object.keys(row.timers).length > 0) {
        out.set(row.key, { ...row.timers });
      }
    }
    return Promise.resolve(out);
  }

  commit(w: CheckpointWrite): Promise<CommitResult> {
    this.#check();
    if (this.failCommitWhen?.(w)) throw new Error("commit failed");
    const row = this.partitions.get(`${w.groupId}/${tpKey(w.tp)}`);
    if (!row || row.epoch !== w.epoch) return Promise.resolve({ committed: false, expired: 0 });
    if (w.previousOffset !== undefined && row.nextOffset !== w.previousOffset) {
      return Promise.resolve(
        row.nextOffset === w.nextOffset ? { committed: true, expired: 0 } : {
          committed: false,
          storedOffset: row.nextOffset,
          storedClock: row.clock,
          ...(row.sourcesPublished === undefined ? {} : { storedSourcesPublished: row.sourcesPublished }),
          expired: 0,
        },
      );
    }
    row.nextOffset = w.nextOffset;
    row.clock = w.clock;
    if (w.sourcesPublished === undefined) delete row.sourcesPublished;
    else row.sourcesPublished = w.sourcesPublished;
    const now = new Date();
    for (const key of w.deletes) this.#deleteActor(w.kind, key);
    for (const { parts, ...a } of w.upserts) {
      const id = `${w.kind}/${a.key}`;
      const before = this.rows.get(id)?.parts;
      this.partsWritten += parts?.upserts.length ?? 0;
      this.rows.set(id, {
        ...structuredClone(a),
        ...(parts ? { parts: writeParts(before, parts) } : {}),
        partition: w.tp.partition,
        ...(w.partitions === undefined ? {} : { partitionCount: w.partitions }),
        updatedAt: now,
      });
    }
    let expired = 0;
    if (w.expireBefore !== undefined) {
      for (const [id, r] of this.rows) {
        const armed = Object.keys(r.timers).length > 0;
        // Partition 0's sweep takes the rows of partitions the topic no longer has too, as `expireStates` does.
        const swept = r.partition === w.tp.partition ||
          (w.tp.partition === 0 && w.partitions !== undefined && r.partition >= w.partitions);
        if (id.startsWith(`${w.kind}/`) && swept && r.lastActiveAt < w.expireBefore && !armed) {
          this.#deleteActor(w.kind, r.key);
          expired++;
        }
      }
    }
    for (const a of w.projections.alerts) {
      if (this.alerts.has(a.alertId)) continue;
      this.alerts.set(a.alertId, a);
      this.alertsStoredAt.set(a.alertId, this.now());
    }
    // The newest by generatedAt, of one instant the last emitted, as `upsertRecommendations` keeps.
    for (const r of w.projections.recommendations) {
      const kept = this.recommendations.get(r.userId);
      if (!kept || Date.parse(kept.generatedAt) <= Date.parse(r.generatedAt)) this.recommendations.set(r.userId, r);
    }
    for (const batch of w.projections.analyticsHistory) {
      for (const m of batch.minutes) this.analyticsMinutes.set(m.minute, structuredClone(m));
    }
    if (w.projections.analyticsHistory.length > 0) {
      const keepFrom = w.projections.analyticsHistory.reduce((newest, b) => Math.max(newest, b.keepFrom), -Infinity);
      for (const minute of this.analyticsMinutes.keys()) if (minute < keepFrom) this.analyticsMinutes.delete(minute);
    }
    this.#addProductMinutes(w.tp.partition, w.projections.productMinutes);
    this.commits++;
    if (this.loseNextReply) {
      this.loseNextReply = false;
      return Promise.reject(new Error("connection lost before the commit's reply"));
    }
    return Promise.resolve({ committed: true, expired });
  }

  /** Deletes an actor's row, and a user's latest recommendations, as `deleteStates` and `expireStates` do. */
  #deleteActor(kind: string, key: string): void {
    this.rows.delete(`${kind}/${key}`);
    if (kind === RECOMMENDED_KIND) this.recommendations.delete(key);
  }

  /** Deletes up to `limit` alerts stored before `now() - retentionMs`, oldest first, as the SQL store does. */
  pruneAlerts(retentionMs: number, limit: number): Promise<number> {
    this.#check();
    const before = this.now() - retentionMs;
    const old = [...this.alertsStoredAt].filter(([, at]) => at < before).sort((a, b) => a[1] - b[1]).slice(0, limit);
    for (const [id] of old) {
      this.alerts.delete(id);
      this.alertsStoredAt.delete(id);
    }
    return Promise.resolve(old.length);
  }

  /** Adds deltas as `storeProductMinutes` does, and prunes the partition's minutes before the newest `keepFrom`. */
  #addProductMinutes(partition: number, deltas: readonly ProductMinute[]): void {
    if (deltas.length === 0) return;
    for (const d of deltas) {
      const id = d.category === null ? `${d.productId}/${d.minute}` : `${d.productId}/${d.minute}/${d.category}`;
      const sum = this.productMinutes.get(id);
      this.productMinutes.set(id, {
        ...d,
        partition,
        brand: d.brand ?? sum?.brand ?? null,
        views: (sum?.views ?? 0) + d.views,
        cartAdds: (sum?.cartAdds ?? 0) + d.cartAdds,
        orders: (sum?.orders ?? 0) + d.orders,
        categoryOrders: (sum ? sum.categoryOrders ?? sum.orders : 0) + (d.categoryOrders ?? d.orders),
        units: (sum?.units ?? 0) + d.units,
        revenueMillis: (sum?.revenueMillis ?? 0) + d.revenueMillis,
      });
    }
    const keepFrom = deltas.reduce((newest, d) => Math.max(newest, d.keepFrom), -Infinity);
    for (const [id, m] of this.productMinutes) {
      if (m.partition === partition && m.minute < keepFrom) this.productMinutes.delete(id);
    }
  }

  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null> {
    this.#check();
    const row = this.rows.get(`${kind}/${key}`);
    return Promise.resolve(row ? { state: wholeState(row), updatedAt: row.updatedAt } : null);
  }
}
