/** Queries on partition checkpoints and actor states. Tagged templates only. */
import type postgres from "postgres";
import type { Sql, TransactionSql } from "../engine/database.ts";
import type { Alert, Recommendation } from "../engine/outputs.ts";
import { partitionForKey } from "../engine/partitioner.ts";
import { READ_COMMITTED } from "./isolation.ts";

/** A partition's checkpoint row after this owner claimed it. */
export interface ClaimedPartition {
  readonly nextOffset: number;
  /** The partition clock (epoch ms) as of `nextOffset`. */
  readonly clock: number;
  readonly epoch: number;
  /** A fed partition's release as of `nextOffset` (engine/checkpoint.ts Claim); absent: none. */
  readonly sourcesPublished?: number;
  /** Times the log started again below the checkpoint (engine/checkpoint.ts Claim); absent: 0. */
  readonly logGeneration?: number;
}

/** A partition_checkpoints row as the queries below read it. */
interface CheckpointRow {
  readonly next_offset: string;
  readonly clock: string;
  readonly epoch: string;
  readonly sources_published: string | null;
  readonly log_generation: number;
}

/** A row read back as a claim; `sourcesPublished` only when one is stored, `logGeneration` only above 0. */
function claimOf(row: CheckpointRow): ClaimedPartition {
  const claim = { nextOffset: Number(row.next_offset), clock: Number(row.clock), epoch: Number(row.epoch) };
  const generation = Number(row.log_generation);
  const withGeneration = generation > 0 ? { ...claim, logGeneration: generation } : claim;
  return row.sources_published === null
    ? withGeneration
    : { ...withGeneration, sourcesPublished: Number(row.sources_published) };
}

/**
 * What a checkpoint writes of an actor's parts field (engine/actor.ts PersistedParts), stored as rows of their own; its
 * `state` is then the persisted form without that field. Loads and reads give the state back whole.
 */
export interface StoredParts {
  readonly field: string;
  /** Elements added or changed since the last checkpoint, by their key. */
  readonly upserts: readonly { readonly key: number; readonly data: unknown }[];
  /** Keys of stored elements that are gone. */
  readonly deletes: readonly number[];
  /** The stored elements are not known (a state restored, or never written): every one not in `upserts` goes. */
  readonly replace: boolean;
}

/** An actor's persisted row. */
export interface StoredActor {
  readonly key: string;
  /** The persisted form; with `parts`, without their field. */
  readonly state: unknown;
  /** Written only: a field of the state stored as rows of its own. */
  readonly parts?: StoredParts;
  /** Pending timers: name → deadline (epoch ms). */
  readonly timers: Record<string, number>;
  /** Event time of the actor's last message (epoch ms). */
  readonly lastActiveAt: number;
}

/**
 * How long a claim waits for the partition's row, locked by a checkpoint of the previous owner still
 * open (its process stopped or frozen between its statements). A claim waiting longer would hold up
 * the whole assignment, and with it the consumer; refused, it is retried with backoff instead.
 */
const CLAIM_LOCK_TIMEOUT = "2s";

/**
 * The consumer groups other than `groupId` that have checkpointed any of `topics`, when `groupId` has
 * not: actor states carry no group, so a second group (or a changed GROUP_ID) would fold the whole
 * log again into the states the first one built. Decides the owner of a database that has none recorded
 * yet (sql/state_owner.ts), i.e. one written before migration 012.
 */
export async function otherStateOwners(sql: Sql, groupId: string, topics: readonly string[]): Promise<string[]> {
  const rows = await sql<{ group_id: string }[]>`
    select distinct group_id from partition_checkpoints
     where topic in ${sql(topics)}
       and not exists (select 1 from partition_checkpoints where group_id = ${groupId} and topic in ${sql(topics)})
     order by group_id`;
  return rows.map((row) => row.group_id);
}

/** The topics `groupId` has claimed partitions of, in name order: where its instances read. */
export async function claimedTopics(sql: Sql, groupId: string): Promise<string[]> {
  const rows = await sql<{ topic: string }[]>`
    select distinct topic from partition_checkpoints where group_id = ${groupId} order by topic`;
  return rows.map((row) => row.topic);
}

/**
 * Takes ownership of a partition: bumps its epoch so that any checkpoint still in flight from
 * a previous owner is rejected, and returns where to resume. Throws (lock_not_available) if the
 * previous owner's checkpoint holds the row for longer than CLAIM_LOCK_TIMEOUT.
 */
export async function claimPartition(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  owner: string,
): Promise<ClaimedPartition> {
  return await sql.begin(READ_COMMITTED, async (tx) => {
    await tx`select set_config('lock_timeout', ${CLAIM_LOCK_TIMEOUT}, true)`;
    const [row] = await tx<CheckpointRow[]>`
      insert into partition_checkpoints (group_id, topic, partition, epoch, owner)
      values (${groupId}, ${topic}, ${partition}, 1, ${owner})
      on conflict (group_id, topic, partition) do update
        set epoch = partition_checkpoints.epoch + 1, owner = excluded.owner, updated_at = now()
      returning next_offset, clock, epoch, sources_published, log_generation`;
    return claimOf(row);
  });
}

/**
 * Where a partition's checkpoint stands once a transaction still writing it has ended (null if it was
 * never claimed). A commit whose reply was lost may still be finishing on the server (its COMMIT
 * sent, the row still locked); a plain read would see the offset before it and the owner would
 * apply those records again onto the states it wrote. Waiting for the row lock (up to
 * CLAIM_LOCK_TIMEOUT, then an error to retry) reads what it left.
 */
export async function readSettledCheckpoint(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
): Promise<ClaimedPartition | null> {
  return await sql.begin(READ_COMMITTED, async (tx) => {
    await tx`select set_config('lock_timeout', ${CLAIM_LOCK_TIMEOUT}, true)`;
    const [row] = await tx<CheckpointRow[]>`
      select next_offset, clock, epoch, sources_published, log_generation from partition_checkpoints
       where group_id = ${groupId} and topic = ${topic} and partition = ${partition}
         for share`;
    return row ? claimOf(row) : null;
  });
}

/** Where a partition's checkpoint stands now (null if it was never claimed); see readSettledCheckpoint. */
export async function readCheckpoint(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
): Promise<ClaimedPartition | null> {
  const [row] = await sql<CheckpointRow[]>`
    select next_offset, clock, epoch, sources_published, log_generation from partition_checkpoints
     where group_id = ${groupId} and topic = ${topic} and partition = ${partition}`;
  return row ? claimOf(row) : null;
}

/** Where every claimed partition of a topic stands, by partition. */
export async function readCheckpoints(
  sql: Sql,
  groupId: string,
  topic: string,
): Promise<Map<number, ClaimedPartition>> {
  const rows = await sql<(CheckpointRow & { partition: number })[]>`
    select partition, next_offset, clock, epoch, sources_published, log_generation from partition_checkpoints
     where group_id = ${groupId} and topic = ${topic}`;
  return new Map(rows.map((row) => [Number(row.partition), claimOf(row)]));
}

/**
 * The log of a partition starts again below its checkpoint (its topic created again, or its tail lost): moves the
 * checkpoint back to `nextOffset` and raises the log generation, in one statement, if `epoch` still owns it. Returns
 * the new generation, or null if fenced off. Both at once: a restart in between would find the log short again and
 * raise the generation a second time, and the replay's outputs would not have the ids of the first run's.
 */
export async function restartLog(
  sql: Sql,
  groupId: string,
  topic: string,
  partition: number,
  epoch: number,
  nextOffset: number,
): Promise<number | null> {
  const [row] = await sql<{ log_generation: number }[]>`
    update partition_checkpoints
       set next_offset = ${nextOffset}, log_generation = log_generation + 1, updated_at = now()
     where group_id = ${groupId} and topic = ${topic} and partition = ${partition} and epoch = ${epoch}
    returning log_generation`;
  return row ? Number(row.log_generation) : null;
}

/**
 * What `advanceCheckpoint` found. `diverged`: this epoch still owns the partition but its offset is
 * neither the one the writer believes nor the one it writes: an earlier attempt committed and its
 * reply was lost, and the writer has moved on since. The writer must resume from `storedOffset`.
 */
export type Advance =
  | { readonly outcome: "advanced" | "fenced" | "alreadyCommitted" }
  | {
    readonly outcome: "diverged";
    readonly storedOffset: number;
    readonly storedClock: number;
    readonly storedSourcesPublished?: number;
  };

/**
 * Advances the partition's offset (and its clock and release, `sourcesPublished`: absent, none) if `epoch` still
 * owns it and, when `previousOffset` is given, the offset is still that one. "alreadyCommitted": the same epoch
 * already stands at `nextOffset`, i.e. an earlier attempt of this very checkpoint committed but its reply was lost;
 * writing it again would add the product minute deltas twice. Runs inside the checkpoint transaction, so it also
 * locks the row until commit.
 */
export async function advanceCheckpoint(
  tx: TransactionSql,
  groupId: string,
  topic: string,
  partition: number,
  epoch: number,
  nextOffset: number,
  clock: number,
  previousOffset?: number,
  sourcesPublished?: number,
): Promise<Advance> {
  const rows = await tx`
    update partition_checkpoints
       set next_offset = ${nextOffset}, clock = ${clock}, sources_published = ${sourcesPublished ?? null},
           updated_at = now()
     where group_id = ${groupId} and topic = ${topic} and partition = ${partition} and epoch = ${epoch}
       ${previousOffset === undefined ? tx`` : tx`and next_offset = ${previousOffset}`}
    returning 1`;
  if (rows.length === 1) return { outcome: "advanced" };
  if (previousOffset === undefined) return { outcome: "fenced" };
  const [row] = await tx<CheckpointRow[]>`
    select epoch, next_offset, clock, sources_published, log_generation from partition_checkpoints
     where group_id = ${groupId} and topic = ${topic} and partition = ${partition}`;
  if (!row || Number(row.epoch) !== epoch) return { outcome: "fenced" };
  const stored = claimOf(row);
  if (stored.nextOffset === nextOffset) return { outcome: "alreadyCommitted" };
  const diverged = { outcome: "diverged", storedOffset: stored.nextOffset, storedClock: stored.clock } as const;
  return stored.sourcesPublished === undefined
    ? diverged
    : { ...diverged, storedSourcesPublished: stored.sourcesPublished };
}

/** Separates the states' JSON texts in `saveStates`' one text parameter (never in JSON text: see there). */
const STATE_SEPARATOR = "\u0001";

/** Actor rows as `saveStates` sends them: encoded before the transaction, whose locks are then held for its statements only. */
export interface EncodedStates {
  readonly count: number;
  /** The states' JSON texts joined by STATE_SEPARATOR. */
  readonly states: string;
  /** The rows' small fields (key, timers, next deadline, last activity, parts field) as one JSON array. */
  readonly rows: string;
  /** The actors' parts to write, for those that have them. */
  readonly parts: readonly EncodedParts[];
}

/** One actor's parts as `saveStates` sends them. */
interface EncodedParts {
  readonly key: string;
  readonly replace: boolean;
  /** Keys of the stored elements to delete, joined by commas. */
  readonly deletes: string;
  /** Keys of the elements to upsert, joined by commas. */
  readonly upserts: string;
  /** Their JSON texts joined by STATE_SEPARATOR, in the same order. */
  readonly data: string;
}

/** Encodes an actor's parts; keys must be integers (epoch ms, counts): they are stored as bigint. */
function encodeParts(kind: string, key: string, parts: StoredParts): EncodedParts {
  for (const k of [...parts.deletes, ...parts.upserts.map((u) => u.key)]) {
    if (!Number.isSafeInteger(k)) throw new Error(`actor ${kind}/${key}: part key ${k} is not an integer`);
  }
  const data = parts.upserts.map((u) => {
    const text = JSON.stringify(u.data);
    if (text === undefined) throw new Error(`actor ${kind}/${key}: part ${u.key} persisted to nothing`);
    return text;
  });
  return {
    key,
    replace: parts.replace,
    deletes: parts.deletes.join(","),
    upserts: parts.upserts.map((u) => u.key).join(","),
    data: data.join(STATE_SEPARATOR),
  };
}

/** Encodes actor rows for `saveStates`. */
export function encodeStates(kind: string, actors: readonly StoredActor[]): EncodedStates {
  // The rows' small fields in one JSON document; the states apart, as one text of their JSON joined by
  // U+0001, which JSON text never holds raw (JSON.stringify escapes every control character). As
  // strings inside the document they were escaped once more here and unescaped by PostgreSQL; as
  // nested objects PostgreSQL parsed them twice. Each is cast to jsonb once.
  const states = actors.map((a) => {
    const text = JSON.stringify(a.state);
    // An empty text would split into no row, and the upsert would leave the actor out without a word.
    if (text === undefined) throw new Error(`actor ${kind}/${a.key} persisted to nothing`);
    return text;
  }).join(STATE_SEPARATOR);
  const rows = JSON.stringify(actors.map((a) => {
    const deadlines = Object.values(a.timers);
    return {
      key: a.key,
      timers: a.timers,
      next: deadlines.length > 0 ? Math.min(...deadlines) : null,
      active: a.lastActiveAt,
      parts: a.parts?.field ?? null,
    };
  }));
  const parts = actors.flatMap((a) => a.parts ? [encodeParts(kind, a.key, a.parts)] : []);
  return { count: actors.length, states, rows, parts };
}

/**
 * Upserts many actor rows of one partition in one statement; `partitionCount`: the topic's partition count that placed
 * their keys on it (absent: unknown), which `loadTimers` reads back.
 */
export async function saveStates(
  tx: TransactionSql,
  kind: string,
  partition: number,
  { count, states, rows, parts }: EncodedStates,
  partitionCount?: number,
): Promise<void> {
  if (count === 0) return;
  await tx`
    insert into actor_states (
      kind, key, partition, partition_count, state, timers, next_timer_at, last_active_at, parts_field, updated_at)
    select ${kind}, t.key, ${partition}, ${partitionCount ?? null}::integer, s.state::jsonb, t.timers, t.next, t.active,
           t.parts, now()
      from rows from (json_to_recordset(${rows}::text::json)
             as (key text, timers jsonb, next bigint, active bigint, parts text))
           with ordinality as t(key, timers, next, active, parts, n)
      join unnest(string_to_array(${states}::text, chr(1))) with ordinality as s(state, n) using (n)
    on conflict (kind, key) do update
      set partition = excluded.partition, partition_count = excluded.partition_count, state = excluded.state,
          timers = excluded.timers, next_timer_at = excluded.next_timer_at, last_active_at = excluded.last_active_at,
          parts_field = excluded.parts_field, updated_at = excluded.updated_at`;
  for (const p of parts) await saveParts(tx, kind, p);
}

/** Writes an actor's changed parts and deletes its gone ones (all others too when `replace`); after its row. */
async function saveParts(tx: TransactionSql, kind: string, p: EncodedParts): Promise<void> {
  if (p.replace || p.deletes !== "") {
    await tx`
      delete from actor_state_parts
       where kind = ${kind} and key = ${p.key}
         and (${p.replace}::boolean or part = any(string_to_array(${p.deletes}::text, ',')::bigint[]))`;
  }
  if (p.upserts === "") return;
  await tx`
    insert into actor_state_parts (kind, key, part, data)
    select ${kind}, ${p.key}, k.part::bigint, d.data::jsonb
      from unnest(string_to_array(${p.upserts}::text, ',')) with ordinality as k(part, n)
      join unnest(string_to_array(${p.data}::text, chr(1))) with ordinality as d(data, n) using (n)
    on conflict (kind, key, part) do update set data = excluded.data`;
}

/**
 * A row's persisted form whole, as loads and reads give it: with a parts field (actor_states.parts_field), its stored
 * elements put back under it in key order. `a` names the actor_states row.
 */
export function wholeState(sql: Sql): postgres.Fragment {
  return sql`case when a.parts_field is null then a.state else a.state || jsonb_build_object(a.parts_field,
    coalesce((select jsonb_agg(p.data order by p.part) from actor_state_parts p where p.kind = a.kind and p.key = a.key),
             '[]'::jsonb)) end`;
}

/**
 * The actor kind `latest_recommendations` is keyed by (the `recommendations` topic's key is the user id): when a user's
 * state is deleted, its latest recommendations go with it, or GET /v1/users/{id}/recommendations would still answer.
 */
export const RECOMMENDED_KIND = "user";

/** Deletes actor rows (expired or erased), and an expired user's latest recommendations with them. */
export async function deleteStates(tx: TransactionSql, kind: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await tx`delete from actor_states where kind = ${kind} and key = any(${keys as string[]}::text[])`;
  if (kind !== RECOMMENDED_KIND) return;
  await tx`delete from latest_recommendations where user_id = any(${keys as string[]}::text[])`;
}

/**
 * Deletes a partition's actors inactive since before `cutoff` (epoch ms) with no pending timer, and the latest
 * recommendations of the users among them; returns how many actors. Partition 0, given the topic's `partitionCount`,
 * also those of rows naming a partition the topic no longer has.
 */
export async function expireStates(
  tx: TransactionSql,
  kind: string,
  partition: number,
  cutoff: number,
  partitionCount?: number,
): Promise<number> {
  // Partition 0 also sweeps rows naming a partition the topic no longer has (created again with fewer): no owner would.
  const orphansFrom = partition === 0 && partitionCount !== undefined ? partitionCount : 2_147_483_647;
  const [{ expired }] = await tx<{ expired: number }[]>`
    with gone as (
      delete from actor_states
       where kind = ${kind} and (partition = ${partition} or partition >= ${orphansFrom}) and last_active_at < ${cutoff}
         and next_timer_at is null
      returning key
    ), recommendations as (
      delete from latest_recommendations
       where ${kind}::text = ${RECOMMENDED_KIND} and user_id in (select key from gone)
    )
    select count(*)::int as expired from gone`;
  return expired;
}

/** Alerts deleted per statement at most: a backlog of old alerts is worked off in several short statements. */
export const ALERT_PRUNE_BATCH = 1_000;

/**
 * Deletes up to `limit` alerts stored (`created_at`, by the database's clock) more than `retentionMs` ago, oldest first;
 * returns how many. Stored time, not event time: an import of old events keeps its alerts for the retention. Instances
 * pruning at once skip the rows another has locked, so neither waits for the other.
 */
export async function pruneAlerts(sql: Sql, retentionMs: number, limit: number): Promise<number> {
  const [{ pruned }] = await sql<{ pruned: number }[]>`
    with pruned as (
      delete from alerts
       where alert_id in (
         select alert_id from alerts
          where created_at < now() - make_interval(secs => ${retentionMs / 1000}::float8)
          order by created_at limit ${limit}
            for update skip locked)
      returning 1
    )
    select count(*)::int as pruned from pruned`;
  return pruned;
}

type ActorRow = { key: string; state: unknown; timers: Record<string, number>; last_active_at: string };

const toStored = (row: ActorRow): StoredActor => ({
  key: row.key,
  state: row.state,
  timers: row.timers,
  lastActiveAt: Number(row.last_active_at),
});

/** Loads many actors in one query; missing keys are absent from the map. */
export async function loadStates(sql: Sql, kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
  const out = new Map<string, StoredActor>();
  if (keys.length === 0) return out;
  const rows = await sql<ActorRow[]>`
    select a.key, ${wholeState(sql)} as state, a.timers, a.last_active_at from actor_states a
     where a.kind = ${kind} and a.key = any(${keys as string[]}::text[])`;
  for (const row of rows) out.set(row.key, toStored(row));
  return out;
}

/**
 * The pending timers of a partition's actors (every partition's: `partition` undefined), without their states. With
 * `partitionCount`, the topic's partition count, those of the keys it places on `partition`: the partition's rows
 * placed by that count, and of the rows placed by another count (partitions added since; or unknown) those whose key
 * it places there, whichever partition they name. Only those rows are read (actor_states_placed_timers), not every
 * partition's.
 */
export async function loadTimers(
  sql: Sql,
  kind: string,
  partition?: number,
  partitionCount?: number,
): Promise<Map<string, Record<string, number>>> {
  type Row = { key: string; timers: Record<string, number>; partition_count: number | null };
  if (partition === undefined) {
    const rows = await sql<
      Row[]
    >`select key, timers from actor_states where kind = ${kind} and next_timer_at is not null`;
    return new Map(rows.map((r) => [r.key, r.timers]));
  }
  if (partitionCount === undefined) {
    const rows = await sql<Row[]>`
      select key, timers from actor_states
       where kind = ${kind} and partition = ${partition} and next_timer_at is not null`;
    return new Map(rows.map((r) => [r.key, r.timers]));
  }
  // `<` and `>` rather than `<>`: each arm of the `or` is then a range of the index.
  const rows = await sql<Row[]>`
    select key, timers, partition_count from actor_states
     where kind = ${kind} and next_timer_at is not null
       and ((partition_count = ${partitionCount} and partition = ${partition})
            or partition_count is null or partition_count < ${partitionCount} or partition_count > ${partitionCount})`;
  const out = new Map<string, Record<string, number>>();
  for (const r of rows) {
    if (r.partition_count === partitionCount || partitionForKey(r.key, partitionCount) === partition) {
      out.set(r.key, r.timers);
    }
  }
  return out;
}

/** One persisted actor state with the time it was checkpointed. */
export async function loadState(
  sql: Sql,
  kind: string,
  key: string,
): Promise<{ state: unknown; updatedAt: Date } | null> {
  const [row] = await sql<{ state: unknown; updated_at: Date }[]>`
    select ${wholeState(sql)} as state, a.updated_at from actor_states a where a.kind = ${kind} and a.key = ${key}`;
  return row ? { state: row.state, updatedAt: row.updated_at } : null;
}

/** Inserts alerts; an alert already stored (same id, from a replay) is left as it is. */
export async function insertAlerts(tx: TransactionSql, alerts: readonly Alert[]): Promise<void> {
  if (alerts.length === 0) return;
  const rows = alerts.map((a) => ({
    alert_id: a.alertId,
    type: a.type,
    severity: a.severity,
    subject_kind: a.subject.kind,
    subject_id: a.subject.id,
    occurred_at: a.occurredAt,
    details: JSON.stringify(a.details),
  }));
  await tx`
    insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at, details)
    select r.alert_id, r.type, r.severity, r.subject_kind, r.subject_id, r.occurred_at::timestamptz, r.details::jsonb
      from json_to_recordset(${JSON.stringify(rows)}::text::json) as r(
        alert_id text, type text, severity text, subject_kind text, subject_id text, occurred_at text, details text)
    on conflict (alert_id) do nothing`;
}

/**
 * Keeps each user's newest recommendations (by generatedAt; of one instant, the one emitted last, as a later
 * checkpoint's replaces an earlier one's: `distinct on` kept the first of a checkpoint's).
 */
export async function upsertRecommendations(tx: TransactionSql, recs: readonly Recommendation[]): Promise<void> {
  if (recs.length === 0) return;
  const rows = recs.map((r) => ({ user_id: r.userId, payload: JSON.stringify(r), generated_at: r.generatedAt }));
  await tx`
    insert into latest_recommendations (user_id, payload, generated_at)
    select distinct on (r.user_id) r.user_id, r.payload::jsonb, r.generated_at::timestamptz
      from rows from (json_to_recordset(${JSON.stringify(rows)}::text::json)
             as (user_id text, payload text, generated_at text))
           with ordinality as r(user_id, payload, generated_at, n)
     order by r.user_id, r.generated_at::timestamptz desc, r.n desc
    on conflict (user_id) do update set payload = excluded.payload, generated_at = excluded.generated_at
     where latest_recommendations.generated_at <= excluded.generated_at`;
}
