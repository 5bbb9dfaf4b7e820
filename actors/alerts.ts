/**
 * Alerts as published on the `alerts` topic, keyed by subject id. The id comes from
 * `ctx.outputId(type)`, so a replay re-produces the same alert and the `alerts` table (unique by
 * `alertId`) stores it once.
 */
import type { ActorContext } from "../engine/actor.ts";

/** How urgent an alert is. */
export type Severity = "info" | "warning" | "critical";

/** What an alert is about. */
export interface AlertSubject {
  readonly kind: "user" | "product" | "global";
  readonly id: string;
}

/** The payload on the `alerts` topic. */
export interface Alert {
  readonly alertId: string;
  readonly type: string;
  readonly severity: Severity;
  readonly subject: AlertSubject;
  /** Event time that raised it (a timer's deadline for timer-raised alerts), RFC 3339 UTC. */
  readonly occurredAt: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** What an actor's state keeps of the alerts it raised. */
export interface AlertSummary {
  readonly alertId: string;
  readonly type: string;
  readonly severity: Severity;
  readonly occurredAt: string;
}

/** Builds an alert, emits it on `alerts`, and returns it. */
export function raiseAlert(
  ctx: ActorContext,
  type: string,
  severity: Severity,
  subject: AlertSubject,
  at: number,
  details: Readonly<Record<string, unknown>>,
): Alert {
  const alert: Alert = { alertId: ctx.outputId(type), type, severity, subject, occurredAt: iso(at), details };
  ctx.emit("alerts", subject.id, alert);
  return alert;
}

/** Prepends an alert's summary to a bounded newest-first list. */
export function rememberAlert(list: readonly AlertSummary[], alert: Alert, limit: number): AlertSummary[] {
  const { alertId, type, severity, occurredAt } = alert;
  return [{ alertId, type, severity, occurredAt }, ...list].slice(0, limit);
}

let lastMs = NaN;
let lastIso = "";

/**
 * Epoch milliseconds as an RFC 3339 UTC timestamp. Remembers the last instant formatted: the
 * handlers of one event format its time several times, and formatting is costlier than comparing.
 */
export function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}
