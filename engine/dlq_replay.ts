/**
 * Re-injects dead-lettered records into the topic they came from, after a fix: all of them, or
 * only those that failed with one error code. Each DLQ record is re-injected at most once across
 * runs (recorded in `dlq_replays` by topic, partition, offset and append time, so that a DLQ created again is
 * not taken for the one replayed before, after the append is acknowledged; a crash between the two can
 * re-inject a record twice, which the actors absorb because events keep their eventId; so can two
 * replays run at once, which nothing prevents: run one at a time). A record that fails again is
 * dead-lettered again, as a new DLQ record. A record that cannot be placed (no source topic header, a topic the engine
 * does not read in this log, a record without a key whose source partition its topic lacks) is reported, counted and
 * left, not recorded: a later run places it once the log has its topic or partition again. The rows of records
 * retention deleted are forgotten at the next run, and a run reads only the rows of the offsets it reads, so that
 * neither grows with the deployment's age.
 */
import { BUNDLE_INDEX_HEADER } from "./fact_bundle.ts";
import { forgetDeletedReplays, loadReplayed, markReplayed } from "../sql/dlq.ts";
import type { Sql } from "./database.ts";
import { DLQ_HEADERS, ORIGIN_HEADERS } from "./dead_letter.ts";
import { placeDeadLetter, type ReplayTargets } from "./dlq_placement.ts";
import type {
  LogConsumer,
  LogProducer,
  OutgoingRecord,
  PartitionListener,
  RecordBatch,
  TopicPartition,
} from "./log.ts";
import { tpKey } from "./log.ts";

/** Header on a re-injected record naming the DLQ record it came from. */
export const REPLAYED_FROM_HEADER = "dlq-replayed-from";

/** What a replay needs. */
export interface ReplayOptions {
  readonly consumer: LogConsumer;
  readonly producer: LogProducer;
  readonly sql: Sql;
  readonly dlqTopic: string;
  readonly groupId: string;
  /** The topics records may be re-injected into, with their partition counts; any source topic when undefined. */
  readonly targets?: ReplayTargets;
  /** Only records whose error code is this; all when undefined. */
  readonly errorCode?: string;
  /** The replay ends when no record arrived for this long (ms) and none is being re-injected. */
  readonly idleMs?: number;
  /** Count what would be replayed without appending anything or recording progress. */
  readonly dryRun?: boolean;
  /**
   * Aborted (Ctrl-C): the run stops once the batches in hand are appended and recorded, delivering no more, so that the
   * next run re-injects none of them again (killed between an append and its recording, it did).
   */
  readonly signal?: AbortSignal;
}

/** A DLQ record that cannot be re-injected, and why. */
export interface UnusableRecord {
  readonly partition: number;
  readonly offset: number;
  readonly reason: string;
}

/** How many unusable records a summary names: a DLQ full of them must not fill the memory or the terminal. */
export const UNUSABLE_LISTED = 20;

/** Outcome of a replay. */
export interface ReplaySummary {
  readonly replayed: number;
  /** Records passed over because they failed with another error code. */
  readonly skipped: number;
  /** Records re-injected by an earlier run. */
  readonly alreadyReplayed: number;
  /** Records that cannot be re-injected (see placeDeadLetter), left in the DLQ. */
  readonly unusable: number;
  /** The first UNUSABLE_LISTED of them, by DLQ partition and offset. */
  readonly unusableListed: readonly UnusableRecord[];
  readonly byCode: Readonly<Record<string, number>>;
  /** False when the replay stopped (idle for `idleMs`, e.g. the log kept failing) before the DLQ's end. */
  readonly complete: boolean;
  /** Stopped before the DLQ's end by `signal`. */
  readonly interrupted: boolean;
}

const DEFAULT_IDLE_MS = 3_000;

/** Replays the DLQ up to its current end and returns what was done. */
export async function replayDlq(options: ReplayOptions): Promise<ReplaySummary> {
  /** Per "partition/offset", the append time of the record re-injected there, filled per partition as it is read. */
  const done = new Map<string, number | null>();
  /** Partitions whose rows of `dlq_replays` are in `done`, read at their first batch (its range only). */
  const loaded = new Set<string>();
  /** Whether an earlier run re-injected this very record: same offset, and same append time unless not recorded. */
  const replayedBefore = (id: string, timestamp: number) => {
    const time = done.get(id);
    return time === null || time === timestamp;
  };
  const summary = {
    replayed: 0,
    skipped: 0,
    alreadyReplayed: 0,
    unusable: 0,
    unusableListed: [] as UnusableRecord[],
    byCode: {} as Record<string, number>,
  };
  let lastActivity = Date.now();
  /** Batches delivered and not yet through: the run is not idle while it re-injects one, however long that takes. */
  let handling = 0;
  let assignedOnce = false;
  const pending = new Set<string>();
  /** Partitions whose last batch failed: records there may be left (an empty partition delivers none). */
  const failing = new Set<string>();
  /** Per partition, its end offset when assigned (or at its first batch): records that failed again after
   * being re-injected land beyond it (same key, same partition) and are left for a later run. */
  const ends = new Map<string, number>();
  /** Appended by this run but not yet recorded in `dlq_replays` (the recording failed): recorded, not appended, again. */
  const appended = new Set<string>();
  /** Per partition, its first offset when assigned: the rows below it are of records retention deleted. */
  const starts = new Map<string, number>();
  /** Per partition, the offset after the last batch this run got through: assigned again, it goes on from there. */
  const through = new Map<string, number>();
  /** Where a partition is read from: where this run got, else where its records start. */
  const resumeAt = (key: string) => through.get(key) ?? starts.get(key) ?? 0;
  /**
   * Per partition, its batch in hand (settled either way): a partition assigned again delivers its next batch while
   * one of before the rejoin may still be appending (KafkaConsumer drops that lane, not waiting for it); handled at
   * once, both re-injected the same records.
   */
  const inHand = new Map<string, Promise<void>>();

  const listener: PartitionListener = {
    async assigned(tps: readonly TopicPartition[]) {
      // Reading the partitions' ends and the housekeeping below count as work, not idle time.
      handling++;
      try {
        return await claim(tps);
      } finally {
        handling--;
        lastActivity = Date.now();
      }
    },
    revoked: () => Promise.resolve(),
    batch(batch: RecordBatch) {
      const key = tpKey(batch);
      handling++;
      const turn = (inHand.get(key) ?? Promise.resolve()).then(() => handle(batch)).then(
        () => void failing.delete(key),
        (error) => {
          failing.add(key);
          throw error;
        },
      ).finally(() => {
        handling--;
        lastActivity = Date.now();
      });
      inHand.set(key, turn.catch(() => {}));
      return turn;
    },
  };

  /** Takes newly assigned partitions: where each is read from, and to what end. */
  async function claim(tps: readonly TopicPartition[]): Promise<Map<string, number>> {
    // Assigned again (Kafka: the group dropped this member and took it back, revoking everything): on from where
    // this run got, to the end it read first. Read from its start again, a dry run counted its records twice, a real
    // run took those it had re-injected for an earlier run's, and re-injected those dead-lettered since.
    const known = tps.filter((tp) => ends.has(tpKey(tp)));
    for (const tp of known) {
      if (resumeAt(tpKey(tp)) < ends.get(tpKey(tp))!) pending.add(tpKey(tp));
      else pending.delete(tpKey(tp));
    }
    const fresh = tps.filter((tp) => !ends.has(tpKey(tp)));
    for (const tp of fresh) pending.add(tpKey(tp));
    assignedOnce = true;
    lastActivity = Date.now();
    // A partition with records must be read to its end for the run to be complete, even if it never delivers a
    // batch (the log failing): an empty one, which delivers none, is not waited for, nor one whose records
    // retention deleted (the DLQ is trimmed by age alone), read from where its records start.
    const firsts = new Map<number, number>();
    await Promise.all(fresh.map(async (tp) => {
      try {
        const [start, end] = await Promise.all([options.consumer.earliestOffset(tp), options.consumer.endOffset(tp)]);
        firsts.set(tp.partition, start);
        ends.set(tpKey(tp), end);
        starts.set(tpKey(tp), start);
        if (end <= start) pending.delete(tpKey(tp));
      } catch {
        failing.add(tpKey(tp)); // its end is unknown: the run cannot say it is complete unless a batch gets through
      }
    }));
    if (!options.dryRun) {
      // Housekeeping: a run that cannot do it leaves it to the next, the rows it keeps still being right.
      await forgetDeletedReplays(options.sql, options.groupId, options.dlqTopic, firsts).catch(() => {});
    }
    return new Map(tps.map((tp) => [tpKey(tp), resumeAt(tpKey(tp))]));
  }

  async function handle(batch: RecordBatch): Promise<void> {
    if (options.signal?.aborted) return; // left for the next run, which reads the DLQ from its start again
    lastActivity = Date.now();
    if (!ends.has(tpKey(batch))) ends.set(tpKey(batch), batch.highWatermark);
    const end = ends.get(tpKey(batch))!;
    if (!loaded.has(tpKey(batch))) {
      // Its rows from where it is read to its end (from 0 when its start is unknown); failing, the batch fails.
      const from = starts.get(tpKey(batch)) ?? 0;
      const rows = await loadReplayed(options.sql, options.groupId, options.dlqTopic, batch.partition, from, end);
      for (const [id, time] of rows) done.set(id, time);
      loaded.add(tpKey(batch));
    }
    const records = batch.records.filter((r) => r.offset < end);
    // Records of a batch this run got through already (in flight when the partition was assigned again) count once.
    const seen = through.get(tpKey(batch)) ?? 0;
    const out: OutgoingRecord[] = [];
    const offsets: number[] = [];
    const times: number[] = [];
    // Counted into the summary once the batch is through: a failed batch is delivered again.
    const tally = {
      skipped: 0,
      alreadyReplayed: 0,
      unusable: [] as UnusableRecord[],
      byCode: {} as Record<string, number>,
    };
    for (const record of records) {
      if (record.offset < seen) continue;
      const id = `${record.partition}/${record.offset}`;
      if (replayedBefore(id, record.timestamp)) {
        tally.alreadyReplayed++;
        continue;
      }
      const code = record.headers[DLQ_HEADERS.errorCode] ?? "unknown";
      if (appended.has(id)) {
        // Appended by an earlier delivery of this batch whose recording failed: record it, do not append it again.
        offsets.push(record.offset);
        times.push(record.timestamp);
        tally.byCode[code] = (tally.byCode[code] ?? 0) + 1;
        continue;
      }
      if (options.errorCode !== undefined && code !== options.errorCode) {
        tally.skipped++;
        continue;
      }
      const place = placeDeadLetter(record, options.targets);
      if (place.reason !== undefined) {
        tally.unusable.push({ partition: record.partition, offset: record.offset, reason: place.reason });
        continue;
      }
      const source = place.topic;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(record.headers)) {
        // A bundle entry's index named its place in the bundle; replayed, it is a record of its own.
        if (!Object.values(DLQ_HEADERS).includes(name as never) && name !== BUNDLE_INDEX_HEADER) {
          headers[name] = value;
        }
      }
      headers[REPLAYED_FROM_HEADER] = `${record.topic}/${record.partition}/${record.offset}`;
      // Where and when it was first appended, unless a replay before this one said so already (a DLQ
      // record written before the source time was kept: the DLQ record's own time is the closest).
      const sourcePartition = Number(record.headers[DLQ_HEADERS.partition]);
      const sourceOffset = record.headers[DLQ_HEADERS.offset];
      headers[ORIGIN_HEADERS.position] ??= Number.isInteger(sourcePartition) && sourceOffset !== undefined
        ? `${source}:${sourcePartition}:${sourceOffset}`
        : `${record.topic}:${record.partition}:${record.offset}`; // the DLQ record's own: still one per record
      headers[ORIGIN_HEADERS.time] ??= record.headers[DLQ_HEADERS.timestamp] ?? String(record.timestamp);
      // A keyed record goes where its key leads, a record without a key back to its partition (placeDeadLetter).
      const partition = place.partition === undefined ? {} : { partition: place.partition };
      out.push({
        topic: source,
        key: record.key ?? "",
        value: record.value ?? new Uint8Array(),
        headers,
        ...partition,
      });
      offsets.push(record.offset);
      times.push(record.timestamp);
      tally.byCode[code] = (tally.byCode[code] ?? 0) + 1;
    }
    if (!options.dryRun) {
      await options.producer.append(out);
      for (const offset of offsets) appended.add(`${batch.partition}/${offset}`);
      await markReplayed(options.sql, options.groupId, batch.partition, offsets, options.dlqTopic, times);
      offsets.forEach((offset, i) => done.set(`${batch.partition}/${offset}`, times[i]));
    }
    summary.replayed += offsets.length;
    summary.skipped += tally.skipped;
    summary.alreadyReplayed += tally.alreadyReplayed;
    summary.unusable += tally.unusable.length;
    summary.unusableListed.push(...tally.unusable.slice(0, UNUSABLE_LISTED - summary.unusableListed.length));
    for (const [code, n] of Object.entries(tally.byCode)) summary.byCode[code] = (summary.byCode[code] ?? 0) + n;
    // Past the records, a batch may cover offsets that hold none (Kafka: transaction markers): RecordBatch.
    const next = batch.end ?? (batch.records.at(-1)?.offset ?? -1) + 1;
    through.set(tpKey(batch), Math.max(seen, next));
    if (records.length < batch.records.length || next >= end) {
      pending.delete(tpKey(batch));
    }
  }

  await options.consumer.start([options.dlqTopic], listener);
  lastActivity = Math.max(lastActivity, Date.now()); // joining the group is no idle time either
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  const idle = () => handling === 0 && Date.now() - lastActivity >= idleMs;
  while (!options.signal?.aborted && (!assignedOnce || pending.size > 0) && !idle()) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await options.consumer.stop();
  // A batch of a lane a rejoin dropped is not waited for by the consumer's stop: its records are recorded before the
  // summary (and the command's exit) counts them.
  await Promise.all(inHand.values());
  // Complete unless a partition's last batch failed, or one that showed records stopped short of them
  // (an empty partition delivers no batch: it is not waited for).
  const shortOfEnd = [...pending].some((key) => ends.has(key));
  const complete = assignedOnce && failing.size === 0 && !shortOfEnd;
  return { ...summary, complete, interrupted: !complete && options.signal?.aborted === true };
}
