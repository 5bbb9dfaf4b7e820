/**
 * Checkpoint storage: where partition progress and actor states are made durable together.
 * `SqlCheckpointStore` is the real one (PostgreSQL or PGlite); `MemoryCheckpointStore`
 * (memory_checkpoint_store.ts) serves unit tests of the runtime with the same fencing and expiry rules.
 */
import {
  advanceCheckpoint,
  ALERT_PRUNE_BATCH,
  claimPartition,
  deleteStates,
  encodeStates,
  expireStates,
  insertAlerts,
  loadState,
  loadStates,
  loadTimers,
  pruneAlerts,
  readCheckpoint,
  readCheckpoints,
  readSettledCheckpoint,
  restartLog,
  saveStates,
  type StoredActor,
  upsertRecommendations,
} from "../sql/checkpoints.ts";
import { storeAnalyticsHistory } from "../sql/analytics_minutes.ts";
import { storeProductMinutes } from "../sql/product_minutes.ts";
import type { Projections } from "./outputs.ts";
import type { Sql } from "./database.ts";
import type { TopicPartition } from "./log.ts";
import { READ_COMMITTED } from "../sql/isolation.ts";

export type { StoredActor };
export { ALERT_PRUNE_BATCH };

/** A partition's resume point and the owner epoch this instance now holds. */
export interface Claim {
  readonly epoch: number;
  readonly nextOffset: number;
  /** The partition clock (epoch ms) as of `nextOffset`; 0 before the first checkpoint. */
  readonly clock: number;
  /**
   * A fed partition's release as of `nextOffset`: its clock at its latest idle advance, how far its sources had
   * published (engine/source_watermark.ts); absent: none. A new owner resumes it, as a rewind does.
   */
  readonly sourcesPublished?: number;
  /**
   * Times the partition's log was found to start again below the checkpoint (its topic created again, or its tail
   * lost); absent: 0. Output ids name it (engine/output_id.ts), so that the new log's offsets do not
   * repeat the old log's ids.
   */
  readonly logGeneration?: number;
}

/** Everything one checkpoint writes, atomically. */
export interface CheckpointWrite {
  readonly tp: TopicPartition;
  readonly groupId: string;
  readonly epoch: number;
  /**
   * The offset this checkpoint advances from (the last committed one); when given, a commit whose
   * earlier attempt already committed (lost reply) writes nothing again: product minutes are added.
   */
  readonly previousOffset?: number;
  readonly nextOffset: number;
  /** The partition clock (epoch ms) as of `nextOffset`, where a new owner or a rewind resumes it. */
  readonly clock: number;
  /** A fed partition's release as of `nextOffset` (Claim.sourcesPublished); absent: none. */
  readonly sourcesPublished?: number;
  readonly kind: string;
  /**
   * The topic's partition count that placed the upserted keys on this partition (absent: unknown), stored with their
   * rows: `loadTimers` then reads a partition's own rows only, and the others' just when the count changed.
   */
  readonly partitions?: number;
  readonly upserts: readonly StoredActor[];
  /**
   * Keys whose state is removed (expired in memory), users' latest recommendations with it; removed before the
   * upserts are written, so a key in both (expired, then back with a new record) keeps only its new state.
   */
  readonly deletes: readonly string[];
  /**
   * Also remove this partition's stored actors last active before this time (epoch ms), users' recommendations too;
   * partition 0's also those of partitions numbered `partitions` or above, which the topic no longer has.
   */
  readonly expireBefore?: number;
  /** Alerts, recommendations, analytics history and product minutes since the last checkpoint, for the query tables. */
  readonly projections: Projections;
}

/** What a commit did. */
export interface CommitResult {
  /** False (and nothing written) if the epoch was fenced off by a newer owner, or diverged. */
  readonly committed: boolean;
  /**
   * Set when this epoch still owns the partition but an earlier attempt already committed up to
   * this offset (its reply was lost): nothing was written, and the writer resumes from here.
   */
  readonly storedOffset?: number;
  /** The partition clock stored with `storedOffset`. */
  readonly storedClock?: number;
  /** The release stored with `storedOffset` (Claim.sourcesPublished), if any. */
  readonly storedSourcesPublished?: number;
  /** Stored actors removed by `expireBefore`. */
  readonly expired: number;
}

/** Durable partition progress and actor state. */
export interface CheckpointStore {
  /** Takes ownership of a partition, fencing off checkpoints of any previous owner. */
  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim>;
  /** Persisted actors for `keys` (absent keys are missing from the map), in one round trip. */
  load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>>;
  /**
   * Pending timers of a partition's actors, whether or not they are in memory, by the partition their rows name;
   * `partition` undefined: of every partition. With `partitions` (the topic's partition count), of the keys that count
   * places on `partition`, whichever partition their rows name: after partitions were added to the topic, a key that
   * moved keeps its old partition in its row until its new one writes it. Reads the partition's own rows, and only the
   * rows written under another count (or none recorded) besides.
   */
  loadTimers(kind: string, partition?: number, partitions?: number): Promise<Map<string, Record<string, number>>>;
  /** Writes the checkpoint in one transaction. */
  commit(write: CheckpointWrite): Promise<CommitResult>;
  /**
   * The partition's log starts again below its checkpoint: moves the checkpoint back to `nextOffset` and raises its
   * log generation (Claim.logGeneration), at once, if `epoch` still owns it. Returns the new generation; null: fenced.
   */
  restartLog(tp: TopicPartition, groupId: string, epoch: number, nextOffset: number): Promise<number | null>;
  /** Where the partition's checkpoint stands now: for the epoch check before a checkpoint's outputs are appended. */
  stored(tp: TopicPartition, groupId: string): Promise<Claim | null>;
  /**
   * Where it stands once a commit still in flight has ended: for an owner that cannot tell whether its last
   * commit landed (its reply lost, it may still be committing).
   */
  settled(tp: TopicPartition, groupId: string): Promise<Claim | null>;
  /** Where every claimed partition of `topic` stands now, by partition (a partition never claimed is absent). */
  progress(topic: string, groupId: string): Promise<ReadonlyMap<number, Claim>>;
  /** One persisted state and when it was written, for queries. */
  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null>;
  /**
   * Deletes up to `limit` alerts (of any partition) stored more than `retentionMs` ago by the store's clock, oldest
   * first, in a statement of its own; returns how many. Rows another caller is deleting are skipped, not waited for.
   */
  pruneAlerts(retentionMs: number, limit: number): Promise<number>;
}

/** Checkpoints in PostgreSQL: one transaction per commit, row-locked and fenced by epoch. */
export class SqlCheckpointStore implements CheckpointStore {
  constructor(private readonly sql: Sql) {}

  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    return claimPartition(this.sql, groupId, tp.topic, tp.partition, owner);
  }

  load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
    return loadStates(this.sql, kind, keys);
  }

  loadTimers(kind: string, partition?: number, partitions?: number): Promise<Map<string, Record<string, number>>> {
    return loadTimers(this.sql, kind, partition, partitions);
  }

  async commit(w: CheckpointWrite): Promise<CommitResult> {
    const states = encodeStates(w.kind, w.upserts);
    return await this.sql.begin(READ_COMMITTED, async (tx) => {
      const advance = await advanceCheckpoint(
        tx,
        w.groupId,
        w.tp.topic,
        w.tp.partition,
        w.epoch,
        w.nextOffset,
        w.clock,
        w.previousOffset,
        w.sourcesPublished,
      );
      if (advance.outcome === "diverged") {
        const { outcome: _, ...stored } = advance;
        return { committed: false, ...stored, expired: 0 };
      }
      if (advance.outcome !== "advanced") return { committed: advance.outcome === "alreadyCommitted", expired: 0 };
      await deleteStates(tx, w.kind, w.deletes);
      await saveStates(tx, w.kind, w.tp.partition, states, w.partitions);
      await insertAlerts(tx, w.projections.alerts);
      await upsertRecommendations(tx, w.projections.recommendations);
      await storeAnalyticsHistory(tx, w.projections.analyticsHistory);
      await storeProductMinutes(tx, w.tp.partition, w.projections.productMinutes);
      const expired = w.expireBefore === undefined
        ? 0
        : await expireStates(tx, w.kind, w.tp.partition, w.expireBefore, w.partitions);
      return { committed: true, expired };
    });
  }

  pruneAlerts(retentionMs: number, limit: number): Promise<number> {
    return pruneAlerts(this.sql, retentionMs, limit);
  }

  restartLog(tp: TopicPartition, groupId: string, epoch: number, nextOffset: number): Promise<number | null> {
    return restartLog(this.sql, groupId, tp.topic, tp.partition, epoch, nextOffset);
  }

  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null> {
    return loadState(this.sql, kind, key);
  }

  stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    return readCheckpoint(this.sql, groupId, tp.topic, tp.partition);
  }

  settled(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    return readSettledCheckpoint(this.sql, groupId, tp.topic, tp.partition);
  }

  progress(topic: string, groupId: string): Promise<ReadonlyMap<number, Claim>> {
    return readCheckpoints(this.sql, groupId, topic);
  }
}
