/**
 * Checkpoint storage: where partition progress and actor states are made durable together.
 * `SqlCheckpointStore` is the real one (PostgreSQL or PGlite); `MemoryCheckpointStore` serves
 * unit tests of the runtime.
 */
import { advanceCheckpoint, claimPartition, loadState, loadStates, saveStates } from "../sql/checkpoints.ts";
import type { Sql } from "./database.ts";
import type { TopicPartition } from "./log.ts";
import { tpKey } from "./log.ts";

/** A partition's resume point and the owner epoch this instance now holds. */
export interface Claim {
  readonly epoch: number;
  readonly nextOffset: number;
}

/** One actor state to persist. */
export interface StateRecord {
  readonly key: string;
  readonly state: unknown;
}

/** Durable partition progress and actor state. */
export interface CheckpointStore {
  /** Takes ownership of a partition, fencing off checkpoints of any previous owner. */
  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim>;
  /** Persisted states of `keys` (absent keys are missing from the map), in one round trip. */
  load(kind: string, keys: readonly string[]): Promise<Map<string, unknown>>;
  /** Writes states and the next offset atomically; false (and nothing written) if `epoch` was fenced off. */
  commit(
    tp: TopicPartition,
    groupId: string,
    epoch: number,
    nextOffset: number,
    kind: string,
    states: readonly StateRecord[],
  ): Promise<boolean>;
  /** One persisted state and when it was written, for queries. */
  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null>;
}

/** Checkpoints in PostgreSQL: one transaction per commit, row-locked and fenced by epoch. */
export class SqlCheckpointStore implements CheckpointStore {
  constructor(private readonly sql: Sql) {}

  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    return claimPartition(this.sql, groupId, tp.topic, tp.partition, owner);
  }

  load(kind: string, keys: readonly string[]): Promise<Map<string, unknown>> {
    return loadStates(this.sql, kind, keys);
  }

  async commit(
    tp: TopicPartition,
    groupId: string,
    epoch: number,
    nextOffset: number,
    kind: string,
    states: readonly StateRecord[],
  ): Promise<boolean> {
    return await this.sql.begin(async (tx) => {
      if (!await advanceCheckpoint(tx, groupId, tp.topic, tp.partition, epoch, nextOffset)) return false;
      await saveStates(tx, kind, states);
      return true;
    });
  }

  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null> {
    return loadState(this.sql, kind, key);
  }
}

/** Checkpoints in memory with the same fencing rules, for unit tests. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly partitions = new Map<string, { epoch: number; nextOffset: number; owner: string }>();
  readonly states = new Map<string, { state: unknown; updatedAt: Date }>();
  /** When set, every call fails with this error (to simulate a database outage). */
  failWith: Error | null = null;
  /** Number of successful commits, for assertions. */
  commits = 0;

  #check(): void {
    if (this.failWith) throw this.failWith;
  }

  claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    this.#check();
    const id = `${groupId}/${tpKey(tp)}`;
    const row = this.partitions.get(id) ?? { epoch: 0, nextOffset: 0, owner };
    const next = { epoch: row.epoch + 1, nextOffset: row.nextOffset, owner };
    this.partitions.set(id, next);
    return Promise.resolve({ epoch: next.epoch, nextOffset: next.nextOffset });
  }

  load(kind: string, keys: readonly string[]): Promise<Map<string, unknown>> {
    this.#check();
    const out = new Map<string, unknown>();
    for (const key of keys) {
      const found = this.states.get(`${kind}/${key}`);
      if (found) out.set(key, structuredClone(found.state));
    }
    return Promise.resolve(out);
  }

  commit(
    tp: TopicPartition,
    groupId: string,
    epoch: number,
    nextOffset: number,
    kind: string,
    states: readonly StateRecord[],
  ): Promise<boolean> {
    this.#check();
    const id = `${groupId}/${tpKey(tp)}`;
    const row = this.partitions.get(id);
    if (!row || row.epoch !== epoch) return Promise.resolve(false);
    row.nextOffset = nextOffset;
    const now = new Date();
    for (const s of states) this.states.set(`${kind}/${s.key}`, { state: structuredClone(s.state), updatedAt: now });
    this.commits++;
    return Promise.resolve(true);
  }

  read(kind: string, key: string): Promise<{ state: unknown; updatedAt: Date } | null> {
    this.#check();
    return Promise.resolve(this.states.get(`${kind}/${key}`) ?? null);
  }
}
