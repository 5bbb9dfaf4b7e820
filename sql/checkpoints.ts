/** Queries on partition checkpoints and actor states. Tagged templates only. */
import type { Sql, TransactionSql } from "../engine/database.ts";

/** A partition's checkpoint row after this owner claimed it. */
export interface ClaimedPartition {
  readonly nextOffset: number;
  readonly epoch: number;
}

/**
 * Takes ownership of a partition: bumps its epoch so that any checkpoint still in flight from
 * a previous owner is rejected, and returns where to resume.
 */
export async function claimPartition(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  owner: string,
): Promise<ClaimedPartition> {
  const [row] = await sql<{ next_offset: string; epoch: string }[]>`
    insert into partition_checkpoints (group_id, topic, partition, epoch, owner)
    values (${groupId}, ${topic}, ${partition}, 1, ${owner})
    on conflict (group_id, topic, partition) do update
      set epoch = partition_checkpoints.epoch + 1, owner = excluded.owner, updated_at = now()
    returning next_offset, epoch`;
  return { nextOffset: Number(row.next_offset), epoch: Number(row.epoch) };
}

/**
 * Advances the partition's offset if `epoch` still owns it; returns false when fenced off.
 * Runs inside the checkpoint transaction, so it also locks the row until commit.
 */
export async function advanceCheckpoint(
  tx: TransactionSql,
  groupId: string,
  topic: string,
  partition: number,
  epoch: number,
  nextOffset: number,
): Promise<boolean> {
  const rows = await tx`
    update partition_checkpoints
       set next_offset = ${nextOffset}, updated_at = now()
     where group_id = ${groupId} and topic = ${topic} and partition = ${partition} and epoch = ${epoch}
    returning 1`;
  return rows.length === 1;
}

/** Upserts many actor states in one statement. */
export async function saveStates(
  tx: TransactionSql,
  kind: string,
  states: readonly { key: string; state: unknown }[],
): Promise<void> {
  if (states.length === 0) return;
  const keys = states.map((s) => s.key);
  const docs = states.map((s) => JSON.stringify(s.state));
  await tx`
    insert into actor_states (kind, key, state, updated_at)
    select ${kind}, t.key, t.state::jsonb, now()
      from unnest(${keys}::text[], ${docs}::text[]) as t(key, state)
    on conflict (kind, key) do update set state = excluded.state, updated_at = excluded.updated_at`;
}

/** Loads the persisted states of many actors in one query; missing keys are absent from the map. */
export async function loadStates(sql: Sql, kind: string, keys: readonly string[]): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  if (keys.length === 0) return out;
  const rows = await sql<{ key: string; state: unknown }[]>`
    select key, state from actor_states where kind = ${kind} and key = any(${keys as string[]}::text[])`;
  for (const row of rows) out.set(row.key, row.state);
  return out;
}

/** One persisted actor state with the time it was checkpointed. */
export async function loadState(
  sql: Sql,
  kind: string,
  key: string,
): Promise<{ state: unknown; updatedAt: Date } | null> {
  const [row] = await sql<{ state: unknown; updated_at: Date }[]>`
    select state, updated_at from actor_states where kind = ${kind} and key = ${key}`;
  return row ? { state: row.state, updatedAt: row.updated_at } : null;
}
