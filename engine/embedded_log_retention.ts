/**
 * Retention of the embedded log, so that its records table stops growing: a record is deleted once
 * it is older than the retention AND every group consuming its topic has committed past it (queries
 * in sql/embedded_log.ts). Unlike Kafka, age alone is not enough: DATA_DIR may hold events that a
 * stopped engine has not consumed yet, and those must survive. Offsets never change: the remaining
 * records keep theirs, and each partition's counter goes on from where it was.
 *
 * The internal topics (`checkpointedTopics`: product-events, analytics) are read by the engine alone and never again
 * below a partition's checkpoint, so their records go as soon as every consuming group's checkpoint and committed
 * offset have passed them, whatever their age, as Kafka Streams purges its repartition topics once committed.
 *
 * Deletion goes in small chunks, each its own statement, so that appends and checkpoints on the
 * one PGlite connection wait for a chunk at most, never for a whole pass.
 */
import {
  checkpointedPartitions,
  purgeablePartitions,
  purgeCheckpointedRecords,
  purgeOldestRecords,
} from "../sql/embedded_log.ts";
import type { Sql } from "./database.ts";
import { ensureError } from "./errors.ts";
import { type Instrumentation, noInstrumentation } from "./instrumentation.ts";
import type { Logger } from "./logger.ts";

/** Settings of the retention. */
export interface RetentionOptions {
  /** Records appended longer ago than this are deleted once consumed. */
  readonly retentionMs: number;
  readonly logger: Logger;
  /** Pause between passes; the first pass runs at start. */
  readonly intervalMs?: number;
  /** Most offsets of one partition one statement deletes. */
  readonly chunkRecords?: number;
  /** Topics whose records are deleted once every consuming group's checkpoint passed them, however recent. */
  readonly checkpointedTopics?: readonly string[];
  /** Wall clock (epoch ms), compared with the records' append time; injectable for tests. */
  readonly clock?: () => number;
  readonly instrumentation?: Instrumentation;
}

/** Passes are cheap when there is nothing to delete (one query), so a few minutes apart is enough. */
const DEFAULT_INTERVAL_MS = 5 * 60_000;
/** Deleting 2,000 records took PGlite 10–30 ms here: short enough to interleave with appends and checkpoints. */
const DEFAULT_CHUNK_RECORDS = 2_000;

/** Deletes consumed records past the retention, now and periodically. */
export class EmbeddedLogRetention {
  readonly #sql: Sql;
  readonly #options: RetentionOptions;
  readonly #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<unknown> | null = null;
  #stopped = false;

  constructor(sql: Sql, options: RetentionOptions) {
    if (!(options.retentionMs > 0)) {
      throw new RangeError(`Cannot schedule log retention: current retention is ${options.retentionMs} ms`);
    }
    this.#sql = sql;
    this.#options = options;
    this.#log = options.logger.child({ component: "embedded-log-retention" });
  }

  /** One pass: deletes what is due; returns the records deleted per topic. */
  async purge(): Promise<Map<string, number>> {
    const before = (this.#options.clock ?? Date.now)() - this.#options.retentionMs;
    const chunk = this.#options.chunkRecords ?? DEFAULT_CHUNK_RECORDS;
    const events = this.#options.instrumentation ?? noInstrumentation;
    const checkpointed = this.#options.checkpointedTopics ?? [];
    const deleted = new Map<string, number>();
    const targets = [
      ...(await checkpointedPartitions(this.#sql, checkpointed)).map((target) => ({ target, anyAge: true })),
      ...(await purgeablePartitions(this.#sql, checkpointed)).map((target) => ({ target, anyAge: false })),
    ];
    for (const { target, anyAge } of targets) {
      let n: number;
      do {
        if (this.#stopped) return deleted;
        n = anyAge
          ? await purgeCheckpointedRecords(this.#sql, target, chunk)
          : await purgeOldestRecords(this.#sql, target, before, chunk);
        if (n > 0) {
          deleted.set(target.topic, (deleted.get(target.topic) ?? 0) + n);
          events.emit({ type: "log_records_purged", topic: target.topic, count: n });
        }
      } while (n > 0);
    }
    return deleted;
  }

  /** Runs a pass now, then one every interval, until `stop`. */
  start(): void {
    const pass = () => {
      const started = performance.now();
      this.#running = this.purge().then(
        (deleted) => {
          if (deleted.size === 0) return;
          const records = [...deleted.values()].reduce((a, b) => a + b, 0);
          this.#log.info("deleted consumed records past the retention", {
            records,
            topics: Object.fromEntries(deleted),
            ms: Math.round(performance.now() - started),
          });
        },
        (error) => this.#log.warn("log retention pass failed; retrying at the next one", { error: ensureError(error) }),
      ).finally(() => {
        this.#running = null;
        if (!this.#stopped) this.#timer = setTimeout(pass, this.#options.intervalMs ?? DEFAULT_INTERVAL_MS);
      });
    };
    pass();
  }

  /** Stops scheduling and waits for the pass in progress (it ends after its current chunk). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
