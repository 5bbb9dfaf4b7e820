/** The consumer group that owns the database's state (sql/migrations/012_state_owner.sql). Tagged templates only. */
import type { Sql } from "../engine/database.ts";
import { otherStateOwners } from "./checkpoints.ts";

/**
 * Records `groupId` as the owner of the database's state unless another group owns it; returns the groups that do
 * (empty: `groupId` owns it, now or from before). A database upgraded with state in it has no owner row yet: then
 * the groups that checkpointed `topics` where `groupId` has not (the check made before the row existed) own it, and
 * nothing is recorded. Two start-ups at once with different groups: the second insert waits for the first and then
 * finds its row, so exactly one of them owns the state.
 */
export async function claimStateOwner(sql: Sql, groupId: string, topics: readonly string[]): Promise<string[]> {
  const recorded = await stateOwner(sql);
  if (recorded !== null) return recorded === groupId ? [] : [recorded];
  const others = await otherStateOwners(sql, groupId, topics);
  if (others.length > 0) return others;
  const inserted = await sql`
    insert into state_owner (only_row, group_id) values (true, ${groupId}) on conflict (only_row) do nothing returning 1`;
  if (inserted.length === 1) return [];
  // Another start-up recorded its group between the read and the insert: a new statement sees its committed row
  // (or, if it was deleted meanwhile, the claim starts over).
  return await claimStateOwner(sql, groupId, topics);
}

/**
 * The groups other than `groupId` that own the database's state, as claimStateOwner finds them, recording nothing: for
 * an ingest-only instance, which consumes nothing and must not become the owner of a fresh database.
 */
export async function otherOwners(sql: Sql, groupId: string, topics: readonly string[]): Promise<string[]> {
  const recorded = await stateOwner(sql);
  if (recorded !== null) return recorded === groupId ? [] : [recorded];
  return await otherStateOwners(sql, groupId, topics);
}

/** The group recorded as the owner of the database's state, or null if none is yet. */
export async function stateOwner(sql: Sql): Promise<string | null> {
  const [row] = await sql<{ group_id: string }[]>`select group_id from state_owner`;
  return row?.group_id ?? null;
}
