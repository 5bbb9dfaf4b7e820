/**
 * The instance registry: each instance records where it serves HTTP and keeps a heartbeat, so that
 * another instance can forward a state query to the owner of a key's partition. Partition
 * ownership itself is not duplicated here: it is `partition_checkpoints.owner`, set by each claim.
 */
import {
  deleteInstance,
  forgetDeadInstances,
  type PartitionOwner,
  partitionOwner,
  touchInstance,
  upsertInstance,
} from "../sql/instances.ts";
import type { Sql } from "./database.ts";
import type { Logger } from "./logger.ts";

/** How often an instance refreshes its row. */
export const INSTANCE_HEARTBEAT_MS = 2_000;
/** A row older than this belongs to an instance presumed dead: queries are not forwarded to it. */
export const INSTANCE_STALE_MS = 3 * INSTANCE_HEARTBEAT_MS;
/**
 * A row older than this is deleted by a live instance's heartbeat: its instance died without unregistering (SIGKILL,
 * a stop past its deadline), and each restart under a new id would otherwise add a row for ever. Far beyond
 * INSTANCE_STALE_MS (routing ignores such a row long before); an instance frozen longer (SIGSTOP, a paused VM)
 * registers again at its next heartbeat.
 */
export const INSTANCE_FORGET_MS = 60 * 60 * 1_000;

/** Longest a stop waits to delete this instance's row (see `unregister`). */
export const UNREGISTER_TIMEOUT_MS = 1_000;

export type { PartitionOwner };

/** Registers this instance, heartbeats it, and looks up partition owners. */
export class InstanceRegistry {
  readonly #sql: Sql;
  readonly #groupId: string;
  readonly #log: Logger;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The heartbeat in flight, awaited by `unregister` so that it cannot re-create the row after the delete. */
  #beat: Promise<unknown> = Promise.resolve();
  /** Whether a heartbeat is in flight: the next is skipped, or a slow one would run beside it, unawaited. */
  #beating = false;
  /** Whether a skip was logged since the heartbeat in flight began: one line per stall, not one per interval. */
  #skipLogged = false;

  constructor(sql: Sql, groupId: string, readonly instanceId: string, logger: Logger) {
    this.#sql = sql;
    this.#groupId = groupId;
    this.#log = logger.child({ component: "instance-registry" });
  }

  /** Upserts this instance's row and starts the heartbeat. */
  async register(httpUrl: string): Promise<void> {
    await upsertInstance(this.#sql, this.instanceId, httpUrl);
    this.#timer = setInterval(() => {
      if (this.#beating) {
        if (this.#skipLogged) return;
        this.#skipLogged = true;
        this.#log.warn("instance heartbeat skipped: the previous one is still running", {
          heartbeatMs: INSTANCE_HEARTBEAT_MS,
        });
        return;
      }
      this.#beating = true;
      // A row deleted by someone else (or lost) is recreated, so the instance stays routable.
      this.#beat = touchInstance(this.#sql, this.instanceId)
        .then((found) =>
          found || this.#timer === undefined ? undefined : upsertInstance(this.#sql, this.instanceId, httpUrl)
        )
        .then(() => forgetDeadInstances(this.#sql, INSTANCE_FORGET_MS))
        .then((forgotten) => forgotten > 0 && this.#log.info("deleted the rows of dead instances", { forgotten }))
        .catch((error) => this.#log.warn("instance heartbeat failed", { error }))
        .finally(() => this.#beating = this.#skipLogged = false);
    }, INSTANCE_HEARTBEAT_MS);
  }

  /** The instance that last claimed `topic`/`partition`, with its URL if its heartbeat is fresh. */
  async owner(topic: string, partition: number): Promise<PartitionOwner | null> {
    return await partitionOwner(this.#sql, this.#groupId, topic, partition, INSTANCE_STALE_MS);
  }

  /**
   * Stops the heartbeat and deletes this instance's row (graceful stop), waiting UNREGISTER_TIMEOUT_MS at most: the
   * row only speeds up routing around this instance (its heartbeat goes stale anyway), and a database that does not
   * answer held the whole stop, which then ran into main.ts's deadline without leaving the consumer group.
   */
  async unregister(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const deleting = this.#beat.then(() => deleteInstance(this.#sql, this.instanceId));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      deleting.then(() => true, (error) => (this.#log.warn("cannot unregister the instance", { error }), true)),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), UNREGISTER_TIMEOUT_MS)),
    ]).finally(() => clearTimeout(timer));
    if (!done) {
      deleting.catch(() => {});
      this.#log.warn("unregistering the instance did not finish in time; stopping anyway", {
        timeoutMs: UNREGISTER_TIMEOUT_MS,
      });
    }
  }
}
