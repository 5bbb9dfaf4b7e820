/**
 * Sessions and the funnel, on event time. A new session starts after SESSION_GAP_MINUTES without
 * events, or when the client's sessionId changes. Events may arrive out of order: one inside the
 * session's span (or within a gap before its start) joins it and may move its start earlier;
 * one from before that (or carrying an earlier client session's id) is a late event of a past
 * session and leaves the current one alone.
 */
import { iso } from "./alerts.ts";
import { parseTime } from "./time_parse.ts";

/** Funnel stages, in order. */
export const FUNNEL_STAGES = ["visited", "viewed_product", "added_to_cart", "started_checkout", "purchased"] as const;
/** A funnel stage. */
export type FunnelStage = typeof FUNNEL_STAGES[number];

/** The funnel stage an event type reaches. */
export function stageOf(type: string): FunnelStage {
  switch (type) {
    case "product_viewed":
      return "viewed_product";
    case "product_added_to_cart":
      return "added_to_cart";
    case "checkout_started":
      return "started_checkout";
    case "order_completed":
      return "purchased";
    default:
      return "visited";
  }
}

/** The further of two stages. */
export function furthest(a: FunnelStage, b: FunnelStage): FunnelStage {
  return FUNNEL_STAGES.indexOf(a) >= FUNNEL_STAGES.indexOf(b) ? a : b;
}

/** No stage reached: shared, so that the usual step allocates nothing. */
export const NO_STAGES: readonly FunnelStage[] = Object.freeze([]);

/** The stages after `from` (none: before the first) up to and including `to`: what a session just reached. */
export function stagesBetween(from: FunnelStage | null, to: FunnelStage): readonly FunnelStage[] {
  if (from === to) return NO_STAGES; // most events: no allocation
  const start = from === null ? 0 : FUNNEL_STAGES.indexOf(from) + 1;
  return FUNNEL_STAGES.slice(start, FUNNEL_STAGES.indexOf(to) + 1);
}

/** One session of a user. */
export interface Session {
  /** The client's sessionId, or `auto-<number>` when the client sends none. */
  readonly id: string;
  /** 1 for the user's first session. */
  readonly number: number;
  readonly startedAt: string;
  /** Latest event time in the session (the maximum, whatever the arrival order). */
  readonly lastEventAt: string;
  readonly durationSeconds: number;
  readonly events: number;
  readonly pageViews: number;
  readonly productViews: number;
  readonly stage: FunnelStage;
  /** Distinct products viewed in the session, most recent first (bounded): co-view pairs. */
  readonly viewed: readonly string[];
  /** Distinct products bought in the session, most recent first (bounded): co-bought pairs. */
  readonly bought: readonly string[];
}

/** A session one step has just copied (recordInSession): the step writes its lists in place, not in another copy. */
export type SessionDraft = { -readonly [K in keyof Session]: Session[K] };

/** A finished session as kept in the user's recent history. */
export type SessionSummary = Omit<Session, "viewed" | "bought">;

/** Where an event goes relative to the current session. */
export type Placement = "current" | "new" | "late";

/** Decides whether an event at `at` joins the current session, starts a new one, or is late. */
export function placeEvent(
  session: Session | null,
  at: number,
  clientId: string | undefined,
  gapMs: number,
): Placement {
  if (!session) return "new";
  const start = parseTime(session.startedAt);
  const last = parseTime(session.lastEventAt);
  if (clientId !== undefined && !isGenerated(session) && clientId !== session.id) {
    return at < start ? "late" : "new";
  }
  if (at > last + gapMs) return "new";
  if (at < start - gapMs) return "late";
  return "current";
}

/**
 * The number of the remembered past session a late event at `at` belongs to: the one with the client's id if it sent
 * one, else the one whose span holds `at`, or failing that the nearest within `gapMs` of it. Undefined when none is (a
 * session older than the user's recent history, or a client id it never sent).
 */
export function pastSessionOf(
  sessions: readonly SessionSummary[],
  at: number,
  clientId: string | undefined,
  gapMs: number,
): number | undefined {
  let best: number | undefined;
  let bestDistance = Infinity;
  for (const session of sessions) {
    if (clientId !== undefined && !isGenerated(session) && clientId !== session.id) continue;
    const start = parseTime(session.startedAt);
    const last = parseTime(session.lastEventAt);
    const distance = at < start ? start - at : at > last ? at - last : 0;
    if (distance <= gapMs && distance < bestDistance) {
      best = session.number;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Whether the session's id is the one the engine made up (`auto-<number>`, no client id yet): the
 * exact form, so that a client's own `auto-a` and `auto-b` are two sessions like any other ids.
 */
function isGenerated(session: SessionSummary): boolean {
  return session.id === `auto-${session.number}`;
}

/** A new session opened by an event at `at` (`time`: its text, when the caller has it already). */
export function openSession(number: number, at: number, clientId: string | undefined, time: string = iso(at)): Session {
  return {
    id: clientId ?? `auto-${number}`,
    number,
    startedAt: time,
    lastEventAt: time,
    durationSeconds: 0,
    events: 0,
    pageViews: 0,
    productViews: 0,
    stage: "visited",
    viewed: [],
    bought: [],
  };
}

/** Counts an event of `type` at `at` into the session (`time`: `at` as text, when the caller has it already). */
export function recordInSession(
  session: Session,
  type: string,
  at: number,
  clientId: string | undefined,
  time?: string,
): SessionDraft {
  const startedAt = parseTime(session.startedAt);
  const lastEventAt = parseTime(session.lastEventAt);
  const start = Math.min(startedAt, at);
  const last = Math.max(lastEventAt, at);
  return {
    ...session,
    id: isGenerated(session) && clientId !== undefined ? clientId : session.id,
    // An unchanged time keeps its string: a new one per event outlived the young generation with the state.
    // A moved time is the event's: its text, when given, is not made a second time.
    startedAt: start === startedAt ? session.startedAt : time ?? iso(start),
    lastEventAt: last === lastEventAt ? session.lastEventAt : time ?? iso(last),
    durationSeconds: (last - start) / 1000,
    events: session.events + 1,
    pageViews: session.pageViews + (type === "page_viewed" ? 1 : 0),
    productViews: session.productViews + (type === "product_viewed" ? 1 : 0),
    stage: furthest(session.stage, stageOf(type)),
  };
}

/** The session without its pair-building lists. */
export function summarize(session: Session): SessionSummary {
  const { viewed: _viewed, bought: _bought, ...summary } = session;
  return summary;
}

/** `item` followed by the first `limit - 1` items of `list`, built in one array (not a spread and a slice). */
export function prependBounded<T>(item: T, list: readonly T[], limit: number): T[] {
  if (limit <= 0) return [];
  const out = [item];
  for (let i = 0; i < list.length && out.length < limit; i++) out.push(list[i]);
  return out;
}

/** Puts `ids` at the front of a most-recent-first distinct list, bounded to `limit`. */
export function pushRecent(list: readonly string[], ids: readonly string[], limit: number): string[] {
  // One id (every product view, twice): the same list built in one pass, not through a Set and four arrays.
  if (ids.length === 1 && Number.isInteger(limit) && limit >= 0) {
    const id = ids[0];
    const out: string[] = limit > 0 ? [id] : [];
    for (let i = 0; i < list.length && out.length < limit; i++) if (list[i] !== id) out.push(list[i]);
    return out;
  }
  const fresh = [...new Set(ids)];
  return [...fresh, ...list.filter((p) => !fresh.includes(p))].slice(0, limit);
}
