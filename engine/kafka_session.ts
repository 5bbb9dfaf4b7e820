/**
 * The consumer group's session: how long the group coordinator waits for a member's heartbeat before it drops the member
 * and hands its partitions to the others (KAFKA_SESSION_TIMEOUT_MS), and what the engine derives from it.
 */

/** How often the consumer heartbeats the group coordinator (kafkajs heartbeats between fetches once this has passed). */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** KAFKA_SESSION_TIMEOUT_MS unset: a dead or frozen member's partitions wait this long for another owner. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
/** Kafka's rule of thumb, a heartbeat at most a third of the session: two heartbeats may go missing, not three. */
export const MIN_SESSION_TIMEOUT_MS = 3 * HEARTBEAT_INTERVAL_MS;
/** What a broker accepts by default (group.max.session.timeout.ms). */
export const MAX_SESSION_TIMEOUT_MS = 1_800_000;
/** The least a broker accepts by default (group.min.session.timeout.ms): lower values are the broker's to allow or refuse. */
export const BROKER_MIN_SESSION_TIMEOUT_MS = 6_000;
/** Heartbeat intervals after which the last answered heartbeat no longer confirms the assignment. */
const HEARTBEATS_STALE_AFTER = 3;

/**
 * How long an answered heartbeat confirms this member's assignment. The coordinator drops the member a session timeout
 * after it received its last heartbeat, which is before the answer came back: a confirmation must lapse a heartbeat
 * interval before that, or a member dropped meanwhile would take itself for the owner (3 heartbeats, or 2 s of a 3 s
 * session).
 */
export function confirmationStaleAfterMs(sessionTimeoutMs: number, heartbeatMs = HEARTBEAT_INTERVAL_MS): number {
  return Math.min(HEARTBEATS_STALE_AFTER * heartbeatMs, sessionTimeoutMs - heartbeatMs);
}

/** kafkajs's type for the broker's refusal of a session timeout outside group.min/max.session.timeout.ms. */
const INVALID_SESSION_TIMEOUT = "INVALID_SESSION_TIMEOUT";

/** Whether `error` (or the error it wraps) is the broker's refusal of the session timeout the consumer asked for. */
export function isSessionTimeoutRefusal(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if ((e as { type?: unknown }).type === INVALID_SESSION_TIMEOUT) return true;
  }
  return false;
}
