/**
 * The global actor: a single key ("global") fed by the one-partition `analytics` topic, to which
 * user actors emit one activity fact per distinct event and one fact per abandonment. It keeps
 * per-minute rollups in memory for ANALYTICS_RETENTION_MINUTES and evaluates the business alerts on
 * minute boundaries with a timer on the partition clock (event time; wall time when idle).
 *
 * Minutes that fall out of the retention (counted back from the latest fact, or from the lowest source watermark when
 * that is behind it: a lagging partition's facts may still come) are finished (a fact for them is too late from then on)
 * and are emitted to `analyticsHistory`; the checkpoint covering them stores them in PostgreSQL,
 * where they stay ANALYTICS_HISTORY_DAYS, so that windows longer than the memory can be answered
 * (analytics_window.ts). The boundary, `memoryFrom`, never moves back, even if the retention grows.
 * Finished minutes stay in memory one more round (until the latest minute moves again): by then the
 * checkpoint storing them has normally committed, so a window reaching before the memory finds each
 * minute in memory or in storage, never in neither.
 *
 * | alert | raised when, over its window ending at the minute boundary |
 * |---|---|
 * | `low_conversion` | orders / checkouts < LOW_CONVERSION_RATIO, with ≥ LOW_CONVERSION_MIN_CHECKOUTS checkouts |
 * | `high_cart_abandonment` | abandoned / (abandoned + converted) carts > HIGH_ABANDONMENT_RATIO, with ≥ HIGH_ABANDONMENT_MIN_CARTS outcomes |
 * | `low_traffic` | fewer than LOW_TRAFFIC_PAGE_VIEWS page views, once a page view dated before the boundary was seen and the history covers the window |
 * | `slow_pages` | average loadTime > SLOW_PAGES_SECONDS, with ≥ SLOW_PAGES_MIN_SAMPLES samples |
 *
 * A minute is evaluated only once every `events` partition has published its facts up to it: each one's checkpoints
 * publish its clock after its facts (a SourceWatermark, at most once a minute of its clock, idle ones too), and a
 * boundary past the lowest of them waits (`heldFrom`), however far the facts of a faster partition have moved the
 * clock. A partition not heard of yet holds everything back; an idle one that never had a record, nothing. Until any
 * watermark arrives (analytics fed directly), the clock alone decides. The engine's idle advance of this partition's
 * clock, which stops at every source with records left (engine/source_watermark.ts), also releases what it passes.
 *
 * Each at most once per BUSINESS_ALERT_COOLDOWN_MINUTES. While facts are recent the timer fires
 * every minute; once the newest fact is older than the longest window it fires when `low_traffic`'s cooldown ends
 * (the only alert empty windows raise) and stops after the retention, so a long idle gap costs a bounded number of
 * firings; the next fact re-arms it.
 */
import type { ActorContext, ActorLogic } from "../engine/actor.ts";
import { type AlertSummary, type AlertType, raiseAlert, rememberAlert } from "./alerts.ts";
import { admit, type DedupeState, EMPTY_DEDUPE, persistDedupe, type PersistedDedupe, restoreDedupe } from "./dedupe.ts";
import {
  type AnalyticsFact,
  clockTimeOfFact,
  decodeAnalyticsFact,
  type GlobalMessage,
  type SourceWatermark,
} from "./facts.ts";
import {
  ABANDONMENT_DEDUPE_MINUTES,
  ACTIVE_SKETCH_MINUTES,
  addFact,
  countedAbandonment,
  emptyRollup,
  forgetAbandonments,
  freeze,
  minuteOf,
  type MinuteRollup,
  type PersistedRollup,
  persistRollup,
  restoreRollup,
  revenueByCategoryWindows,
  type StoredMinute,
  storedMinute,
  type WindowTotals,
  windowTotals,
} from "./rollups.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings, minutesMs } from "./settings.ts";
import {
  changedAt,
  chunked,
  chunkOf,
  type Chunks,
  flattened,
  lastMinute,
  leadingCount,
  shifted,
} from "./settled_minutes.ts";

/** The single key of the global actor. */
export const GLOBAL_KEY = "global";
/** The global actor's timer. */
export const EVALUATE_TIMER = "evaluate";
/** Alerts the global actor remembers. */
export const GLOBAL_RECENT_ALERTS = 50;
const MINUTE = 60_000;
const DAY = 1440 * MINUTE;

/** What the global actor emits to `analyticsHistory` when minutes leave its memory. */
export interface AnalyticsHistoryBatch {
  /** The finished minutes (those still within ANALYTICS_HISTORY_DAYS), ascending. */
  readonly minutes: readonly StoredMinute[];
  /** Stored minutes before this (epoch ms) are past ANALYTICS_HISTORY_DAYS and are deleted. */
  readonly keepFrom: number;
}

/** The `events` partitions publishing facts here, as their watermarks say. */
export interface SourceClocks {
  /** The partition count of `events`, the largest any watermark gave. */
  readonly partitions: number;
  /** Partition → its latest watermark (event time, epoch ms); null: idle and never had a record. */
  readonly clocks: Readonly<Record<string, number | null>>;
}

/** The analytics state. */
export interface GlobalState {
  readonly key: string;
  /**
   * Ascending by minute; those before `memoryFrom` are finished (emitted for storage) and kept one more round. The
   * logic's states read it through an accessor (MinuteParts): a fact does not copy a day of minutes.
   */
  readonly minutes: readonly MinuteRollup[];
  /** Minutes before this (epoch ms) have left memory for storage, and their facts are too late; null before any fact. */
  readonly memoryFrom: number | null;
  readonly firstEventAt: number | null;
  /** The latest event time, each taken no later than its receipt (clockTimeOfFact): where windows end. */
  readonly lastEventAt: number | null;
  /** The earliest page view's time: `low_traffic` is evaluated only after one (not at its arrival: partitions lag). */
  readonly firstPageViewAt: number | null;
  readonly facts: number;
  readonly duplicates: number;
  /** Facts for minutes before `memoryFrom` when they arrived (not counted). */
  readonly tooLate: number;
  /** Alert type → boundary (epoch ms) it was last raised at. */
  readonly lastAlertAt: Readonly<Record<string, number>>;
  readonly alerts: readonly AlertSummary[];
  readonly dedupe: DedupeState;
  /** Null until a source partition's watermark arrives: evaluations wait for none. */
  readonly sources: SourceClocks | null;
  /** The earliest minute boundary come due on the clock whose evaluation waits for a source's watermark. */
  readonly heldFrom: number | null;
  /** The latest minute boundary evaluated: a late fact never sets the timer back to it (watermarks may run ahead). */
  readonly evaluatedTo: number | null;
}

/** The persisted form, with realtime summaries for readers (ignored by restore). */
export interface PersistedGlobal extends Omit<GlobalState, "minutes" | "dedupe"> {
  readonly minutes: readonly PersistedRollup[];
  readonly dedupe: PersistedDedupe;
  readonly realtime:
    | { readonly last1: WindowTotals; readonly last5: WindowTotals; readonly last15: WindowTotals }
    | null;
  readonly revenueByCategory: ReturnType<typeof revenueByCategoryWindows>;
}

/** Windows of revenue by category in the state (and `GET /v1/analytics/realtime`): an hour at the default 5 minutes. */
const CATEGORY_WINDOWS_SHOWN = 12;

/** A state without its minutes: the logic keeps those in MinuteParts. */
type GlobalFields = Omit<GlobalState, "minutes">;

/**
 * The minutes of a state in two parts, so that a fact copies only the recent ones: those older (frozen, nearly all of a
 * day) are shared by every version, in chunks, and keep their identity for the checkpoint.
 */
interface MinuteParts {
  /** Ascending chunks of the minutes up to the recent ones, all frozen; a fact for one of them (late) copies its chunk. */
  readonly settled: Chunks<MinuteRollup>;
  /** Ascending, after the settled ones: those within ACTIVE_SKETCH_MINUTES of the latest fact, and new ones. */
  readonly recent: readonly MinuteRollup[];
  /** Both, concatenated at the first read of `minutes` (the evaluation's once a minute, a checkpoint's). */
  all?: readonly MinuteRollup[];
}

/** A state of this logic: its fields, and `minutes` read from its parts (not copied by a spread: it is private). */
class Analytics implements GlobalFields {
  // Declared so that an instance has a slot for each (Object.assign then writes in place, as into a literal).
  readonly key!: string;
  readonly memoryFrom!: number | null;
  readonly firstEventAt!: number | null;
  readonly lastEventAt!: number | null;
  readonly firstPageViewAt!: number | null;
  readonly facts!: number;
  readonly duplicates!: number;
  readonly tooLate!: number;
  readonly lastAlertAt!: Readonly<Record<string, number>>;
  readonly alerts!: readonly AlertSummary[];
  readonly dedupe!: DedupeState;
  readonly sources!: SourceClocks | null;
  readonly heldFrom!: number | null;
  readonly evaluatedTo!: number | null;
  readonly #parts: MinuteParts;

  private constructor(parts: MinuteParts) {
    this.#parts = parts;
  }

  /** The state with `fields` and minutes `parts`. */
  static of(fields: GlobalFields, parts: MinuteParts, changes?: Partial<GlobalFields>): GlobalState {
    return Object.assign(new Analytics(parts), fields, changes) as Analytics & GlobalFields;
  }

  /** `state`'s minutes in parts; those of a state built elsewhere (a caller's spread) split as `retire` would. */
  static partsOf(state: GlobalState): MinuteParts {
    return #parts in state ? state.#parts : split(state.minutes, state.lastEventAt);
  }

  get minutes(): readonly MinuteRollup[] {
    const { settled, recent } = this.#parts;
    return this.#parts.all ??= flattened(settled, recent);
  }
}

/** A new version of `state` with `changes`, and `parts` for minutes (by default its own: the same objects). */
function version(state: GlobalState, changes: Partial<GlobalFields>, parts = Analytics.partsOf(state)): GlobalState {
  return Analytics.of(fieldsOf(state), parts, changes);
}

/** The state's fields: an Analytics' own ones (`minutes` is its accessor), or a plain state's without `minutes`. */
function fieldsOf(state: GlobalState): GlobalFields {
  if (state instanceof Analytics) return state;
  const { minutes: _, ...fields } = state;
  return fields;
}

/** The state as this logic's own (a caller may hand it a plain object it spread), so that its parts are kept. */
function own(state: GlobalState): GlobalState {
  return state instanceof Analytics ? state : version(state, {});
}

/**
 * Ascending minutes of a state built elsewhere (restored, unpacked, a caller's spread) in parts as `retire` leaves them:
 * the frozen ones before the active sketches are settled, so that its facts copy the recent ones only, not the day.
 */
function split(minutes: readonly MinuteRollup[], lastEventAt: number | null): MinuteParts {
  const sketchFloor = lastEventAt === null ? -Infinity : minuteOf(lastEventAt) - ACTIVE_SKETCH_MINUTES * MINUTE;
  let settling = 0;
  while (settling < minutes.length && minutes[settling].minute < sketchFloor && isFrozen(minutes[settling])) settling++;
  return settling === 0
    ? { settled: [], recent: minutes }
    : { settled: chunked(minutes.slice(0, settling)), recent: minutes.slice(settling) };
}

/** Whether a minute has no sketches nor hashes left (only those may settle: `retire` ages only the recent ones). */
function isFrozen(minute: MinuteRollup): boolean {
  return freeze(minute) === minute;
}

/** The analytics state before any fact. */
export function initialGlobal(key: string = GLOBAL_KEY): GlobalState {
  return Analytics.of({
    key,
    memoryFrom: null,
    firstEventAt: null,
    lastEventAt: null,
    firstPageViewAt: null,
    facts: 0,
    duplicates: 0,
    tooLate: 0,
    lastAlertAt: {},
    alerts: [],
    dedupe: EMPTY_DEDUPE,
    sources: null,
    heldFrom: null,
    evaluatedTo: null,
  }, { settled: [], recent: [] });
}

/** The global actor's logic with the given settings. */
export function createGlobalLogic(
  settings: DomainSettings = DEFAULT_DOMAIN_SETTINGS,
): ActorLogic<GlobalState, GlobalMessage> {
  return {
    kind: "global",
    initial: initialGlobal,
    decode: decodeAnalyticsFact,
    // A watermark does not move the clock: a partition's idle clock follows the wall, even beside a historical import.
    eventTime: (message) => message.fact === "watermark" ? 0 : clockTimeOfFact(message),
    label: (message) => message.fact,
    handle: (state, message, ctx) =>
      message.fact === "watermark"
        ? onWatermark(own(state), message, ctx, settings)
        : handle(own(state), message, ctx, settings),
    onTimer: (state, name, ctx) => name === EVALUATE_TIMER ? onEvaluate(own(state), ctx, settings) : state,
    persist: (state) => persistGlobal(state, settings),
    restore: restoreGlobal,
    // Nearly all of a day of minutes are finished: a checkpoint writes only those that changed, not 1 MB each time.
    persistedParts: { field: "minutes", key: "minute" },
  };
}

/** The global actor's logic with the default settings. */
export const globalLogic: ActorLogic<GlobalState, GlobalMessage> = createGlobalLogic();

function handle(state: GlobalState, fact: AnalyticsFact, ctx: ActorContext, s: DomainSettings): GlobalState {
  // Not before the first boundary not evaluated yet: a watermark may have evaluated minutes ahead of the clock.
  // From the fact's own minute: in time order it would have come before the boundaries after it were evaluated.
  const next = Math.max(minuteOf(Math.min(ctx.now(), fact.at)), state.evaluatedTo ?? -Infinity) + MINUTE;
  const due = ctx.timer(EVALUATE_TIMER);
  // Held, the sources decide, not the facts: watermarks evaluate at once and the poll looks again. A fact of a partition
  // behind the others re-armed it to a boundary already passed, so the next fact fired it, once per such fact.
  if (due === undefined || (due > next && state.heldFrom === null)) ctx.setTimer(EVALUATE_TIMER, next);
  if (state.heldFrom !== null && state.heldFrom > next) state = version(state, { heldFrom: next });

  const dedupe = admit(state.dedupe, fact.factId, {
    window: s.FACT_DEDUPE_WINDOW,
    recentLimit: s.FACT_DEDUPE_RECENT_IDS,
  });
  if (!dedupe || (fact.fact === "abandonment" && countedInItsMinute(Analytics.partsOf(state), fact))) {
    return version(state, { duplicates: state.duplicates + 1 });
  }
  const clock = clockTimeOfFact(fact);
  const latest = Math.max(state.lastEventAt ?? clock, clock);
  // Retention and sketch ageing only move when the latest minute does (or a watermark releases minutes).
  const moved = state.lastEventAt === null || minuteOf(latest) !== minuteOf(state.lastEventAt);
  const floor = moved ? memoryFloor(state, latest, s) : state.memoryFrom ?? -Infinity;
  if (fact.at < floor) return version(state, { dedupe, tooLate: state.tooLate + 1 });
  const { parts, memoryFrom } = moved
    ? retire(state, ctx, s, latest, floor)
    : { parts: Analytics.partsOf(state), memoryFrom: state.memoryFrom };
  const { settled, recent } = parts;
  // Only a late fact, for a minute before the recent ones, copies settled minutes: those of its chunk.
  const minute = minuteOf(fact.at);
  const updated = lastMinute(settled) < minute
    ? { settled, recent: withFact(recent, fact, latest) }
    : { settled: changedAt(settled, minute, (chunk) => withFact(chunk, fact, latest)), recent };
  return version(state, {
    dedupe,
    memoryFrom,
    facts: state.facts + 1,
    firstEventAt: state.firstEventAt === null ? fact.at : Math.min(state.firstEventAt, fact.at),
    lastEventAt: latest,
    firstPageViewAt: fact.fact === "activity" && fact.type === "page_viewed"
      ? Math.min(state.firstPageViewAt ?? fact.at, fact.at)
      : state.firstPageViewAt,
  }, updated);
}

/** A copy of ascending `minutes` with the fact counted in its minute (new, and aged as the latest fact says, if none). */
function withFact(minutes: readonly MinuteRollup[], fact: AnalyticsFact, latest: number): MinuteRollup[] {
  const minute = minuteOf(fact.at);
  let i = minutes.length;
  while (i > 0 && minutes[i - 1].minute > minute) i--;
  const updated = [...minutes];
  if (i > 0 && minutes[i - 1].minute === minute) updated[i - 1] = addFact(minutes[i - 1], fact);
  else {
    const fresh = emptyRollup(minute);
    const aged = minute < minuteOf(latest) - ACTIVE_SKETCH_MINUTES * MINUTE
      ? freeze(fresh)
      : minute < minuteOf(latest) - ABANDONMENT_DEDUPE_MINUTES * MINUTE
      ? forgetAbandonments(fresh)
      : fresh;
    updated.splice(i, 0, addFact(aged, fact));
  }
  return updated;
}

/**
 * The oldest minute kept in memory for `latest`: minute-aligned and monotonic, so a finished (stored) minute is never
 * re-created there; counted back from the lowest source watermark when that is behind the latest fact, since that
 * partition's facts may still come (-Infinity while a source partition is not heard of: it holds every minute).
 */
function memoryFloor(state: GlobalState, latest: number, s: DomainSettings): number {
  const lowest = Math.min(latest, lowestWatermark(state.sources));
  return Math.max(state.memoryFrom ?? -Infinity, minuteOf(lowest) - minutesMs(s.ANALYTICS_RETENTION_MINUTES));
}

/**
 * Moves the memory's boundary to `floor`: the minutes it leaves are emitted to the history, and those older than the
 * active sketches or the abandonment hashes lose them.
 */
function retire(
  state: GlobalState,
  ctx: ActorContext,
  s: DomainSettings,
  latest: number,
  floor: number,
): { parts: MinuteParts; memoryFrom: number | null } {
  const sketchFloor = minuteOf(latest) - ACTIVE_SKETCH_MINUTES * MINUTE;
  const hashFloor = minuteOf(latest) - ABANDONMENT_DEDUPE_MINUTES * MINUTE;
  // Minutes before the previous boundary were emitted last round and are dropped now; of those
  // finished now, only the ones the history keeps are held (the others are stored nowhere).
  const held = state.memoryFrom ?? -Infinity;
  const keepFrom = minuteOf(latest) - s.ANALYTICS_HISTORY_DAYS * DAY;
  const kept = (m: MinuteRollup) => m.minute >= floor || (m.minute >= held && m.minute >= keepFrom);
  const { settled, recent } = Analytics.partsOf(state);
  // Ascending: the finished minutes, and those dropped, are at the front; the rest of the settled ones is not visited.
  const finished: MinuteRollup[] = [];
  for (const minutes of [...settled, recent]) {
    for (let i = 0; i < minutes.length && minutes[i].minute < floor; i++) {
      if (minutes[i].minute >= held) finished.push(minutes[i]);
    }
  }
  if (finished.length > 0) emitHistory(ctx, state.key, finished, keepFrom);
  const dropped = leadingCount(settled, (m) => !kept(m));
  // The settled minutes are frozen already (a late fact's too): only the recent ones age, and the frozen ones settle.
  const aged = recent
    .filter(kept)
    .map((m) => m.minute < sketchFloor ? freeze(m) : m.minute < hashFloor ? forgetAbandonments(m) : m);
  let settling = 0;
  while (settling < aged.length && aged[settling].minute < sketchFloor) settling++;
  const parts = {
    settled: shifted(settled, dropped, aged.slice(0, settling)),
    recent: settling === 0 ? aged : aged.slice(settling),
  };
  // Null while a source partition not heard of yet holds every minute.
  return { parts, memoryFrom: floor > -Infinity ? floor : state.memoryFrom };
}

/** Whether an abandonment fact was already counted in its minute (known while the minute keeps its hashes). */
function countedInItsMinute({ settled, recent }: MinuteParts, fact: AnalyticsFact): boolean {
  const minute = minuteOf(fact.at);
  for (const minutes of [recent, settled[chunkOf(settled, minute)] ?? []]) {
    for (let i = minutes.length - 1; i >= 0 && minutes[i].minute >= minute; i--) {
      if (minutes[i].minute === minute) return countedAbandonment(minutes[i], fact.factId);
    }
  }
  return false;
}

/** Hands minutes that left memory to the checkpoint, which stores them (idempotently: they no longer change). */
function emitHistory(ctx: ActorContext, key: string, finished: readonly MinuteRollup[], keepFrom: number): void {
  const batch: AnalyticsHistoryBatch = {
    minutes: finished.filter((m) => m.minute >= keepFrom).map(storedMinute),
    keepFrom,
  };
  ctx.emit("analyticsHistory", key, batch);
}

/** The minutes within the retention (from `memoryFrom` on), without the finished ones held one more round. */
function remembered(state: GlobalState): readonly MinuteRollup[] {
  const from = state.memoryFrom;
  if (from === null || state.minutes.length === 0 || state.minutes[0].minute >= from) return state.minutes;
  return state.minutes.filter((m) => m.minute >= from);
}

/** The evaluation timer: the boundaries due up to its deadline, as far as the sources have published. */
function onEvaluate(state: GlobalState, ctx: ActorContext, s: DomainSettings): GlobalState {
  const at = ctx.now();
  // Held, it looks again after the latest fact's minute, backing off while the hold lasts: a minute after its own
  // deadline was due at once when a faster partition's facts had moved the clock days ahead, so it fired minute by
  // minute up to the clock before every fact (an import: 17,000 warnings of a timer re-arming itself).
  const backoff = Math.min(Math.max(MINUTE, at - (state.heldFrom ?? at)), HELD_POLL_MAX_MS);
  const poll = Math.max(at + backoff, minuteOf(state.lastEventAt ?? at) + MINUTE);
  return advance(state, ctx, s, state.heldFrom ?? at, at, poll, at);
}

/** The longest a held evaluation waits between looks at the sources (the clock's time; watermarks release at once). */
const HELD_POLL_MAX_MS = 10 * MINUTE;

/**
 * A source partition's watermark: evaluates the boundaries (held, or the timer's) it releases, even ahead of the
 * clock, which a quiet shop's facts no longer move; then releases the minutes it held in memory.
 */
function onWatermark(state: GlobalState, mark: SourceWatermark, ctx: ActorContext, s: DomainSettings): GlobalState {
  const clocks = { ...state.sources?.clocks, [String(mark.partition)]: mark.clock };
  // A topic's partitions are never removed: a smaller count is an instance not restarted since some were added.
  const partitions = Math.max(state.sources?.partitions ?? 0, mark.partitions);
  let next: GlobalState = version(state, { sources: { partitions, clocks } });
  const from = next.heldFrom ?? ctx.timer(EVALUATE_TIMER);
  if (from !== undefined) {
    const now = ctx.now();
    // Ahead of the clock only as far as a partition's clock: none holding anything back (Infinity) is not a time.
    const released = releasedTo(next, ctx);
    next = advance(next, ctx, s, from, released === Infinity ? now : Math.max(now, released), minuteOf(now) + MINUTE);
  }
  // A lagging partition catching up releases the minutes it held in memory (a historical import's last partition);
  // only now: the boundaries it released above were evaluated over their whole windows, not over what is left of them.
  if (next.lastEventAt === null) return next;
  const floor = memoryFloor(next, next.lastEventAt, s);
  if (floor <= (state.memoryFrom ?? -Infinity)) return next;
  const { parts, memoryFrom } = retire(next, ctx, s, next.lastEventAt, floor);
  return version(next, { memoryFrom }, parts);
}

/**
 * How far every source partition has published its facts: the lowest watermark (-Infinity while one is not heard of;
 * an idle one that never had a record holds nothing), or the engine's idle advance if later; Infinity without sources.
 */
function releasedTo(state: GlobalState, ctx: ActorContext): number {
  return Math.max(lowestWatermark(state.sources), ctx.sourcesWatermark?.() ?? -Infinity);
}

/** The lowest source watermark: -Infinity while a partition is not heard of, Infinity without sources (or records). */
function lowestWatermark(sources: SourceClocks | null): number {
  if (sources === null) return Infinity;
  let lowest = Infinity;
  for (let partition = 0; partition < sources.partitions && lowest > -Infinity; partition++) {
    const clock = sources.clocks[String(partition)];
    if (clock === undefined) lowest = -Infinity;
    else if (clock !== null) lowest = Math.min(lowest, clock);
  }
  return lowest;
}

/**
 * Evaluates the boundaries from `from` on, in order, that are due (at or before `dueTo`) and released by the sources.
 * One due but not released is held, and the timer set to `poll` to look again; else the timer is set to the next one.
 * Alerts of a boundary other than `ownAt` (the timer being handled) get ids naming it.
 */
function advance(
  state: GlobalState,
  ctx: ActorContext,
  s: DomainSettings,
  from: number,
  dueTo: number,
  poll: number,
  ownAt?: number,
): GlobalState {
  const released = releasedTo(state, ctx);
  ctx.cancelTimer(EVALUATE_TIMER);
  let at: number | undefined = from;
  while (at !== undefined && at <= dueTo && at <= released) {
    const boundary: number = at;
    const ids = boundary === ownAt ? ctx : boundaryIds(ctx, boundary);
    state = evaluate(state, boundary, ids, s);
    at = nextEvaluation(state, at, s);
  }
  if (at === undefined) return state.heldFrom === null ? state : version(state, { heldFrom: null });
  if (at <= dueTo) {
    ctx.setTimer(EVALUATE_TIMER, poll);
    return state.heldFrom === at ? state : version(state, { heldFrom: at });
  }
  ctx.setTimer(EVALUATE_TIMER, at);
  return state.heldFrom === null ? state : version(state, { heldFrom: null });
}

/**
 * `ctx` with output ids naming `boundary`. Delegating, not a spread copy: the runtime's contexts keep their methods on
 * their class (engine/handler_context.ts), which a spread leaves behind.
 */
function boundaryIds(ctx: ActorContext, boundary: number): ActorContext {
  return {
    now: () => ctx.now(),
    emit: (topic, key, value) => ctx.emit(topic, key, value),
    outputId: (rule) => ctx.outputId(`${rule}-${boundary}`),
    setTimer: (name, at) => ctx.setTimer(name, at),
    cancelTimer: (name) => ctx.cancelTimer(name),
    timer: (name) => ctx.timer(name),
    sourcesWatermark: () => ctx.sourcesWatermark?.() ?? Number.NEGATIVE_INFINITY,
  };
}

/** Evaluates the business alerts over their windows ending at the minute boundary `at`. */
function evaluate(state: GlobalState, at: number, ctx: ActorContext, s: DomainSettings): GlobalState {
  const minutes = remembered(state);
  const window = (n: number) => windowTotals(minutes, at - n * MINUTE, at, { sketches: false });
  const candidates: [AlertType, Record<string, unknown>][] = [];

  const conversion = window(s.LOW_CONVERSION_WINDOW_MINUTES);
  if (conversion.checkouts >= s.LOW_CONVERSION_MIN_CHECKOUTS) {
    const ratio = conversion.orders / conversion.checkouts;
    if (ratio < s.LOW_CONVERSION_RATIO) {
      candidates.push(["low_conversion", {
        windowMinutes: s.LOW_CONVERSION_WINDOW_MINUTES,
        orders: conversion.orders,
        checkouts: conversion.checkouts,
        ratio,
        threshold: s.LOW_CONVERSION_RATIO,
      }]);
    }
  }

  const carts = window(s.HIGH_ABANDONMENT_WINDOW_MINUTES);
  const outcomes = carts.cartsAbandoned + carts.cartsConverted;
  if (outcomes >= s.HIGH_ABANDONMENT_MIN_CARTS && carts.cartsAbandoned / outcomes > s.HIGH_ABANDONMENT_RATIO) {
    candidates.push(["high_cart_abandonment", {
      windowMinutes: s.HIGH_ABANDONMENT_WINDOW_MINUTES,
      abandoned: carts.cartsAbandoned,
      converted: carts.cartsConverted,
      ratio: carts.cartsAbandoned / outcomes,
      threshold: s.HIGH_ABANDONMENT_RATIO,
    }]);
  }

  const trafficFrom = at - s.LOW_TRAFFIC_WINDOW_MINUTES * MINUTE;
  if (pageViewBefore(state, at) && state.firstEventAt !== null && state.firstEventAt <= trafficFrom) {
    const traffic = window(s.LOW_TRAFFIC_WINDOW_MINUTES);
    if (traffic.pageViews < s.LOW_TRAFFIC_PAGE_VIEWS) {
      candidates.push(["low_traffic", {
        windowMinutes: s.LOW_TRAFFIC_WINDOW_MINUTES,
        pageViews: traffic.pageViews,
        threshold: s.LOW_TRAFFIC_PAGE_VIEWS,
      }]);
    }
  }

  const pages = window(s.SLOW_PAGES_WINDOW_MINUTES);
  if (pages.loadTimeSamples >= s.SLOW_PAGES_MIN_SAMPLES && pages.averageLoadTimeSeconds > s.SLOW_PAGES_SECONDS) {
    candidates.push(["slow_pages", {
      windowMinutes: s.SLOW_PAGES_WINDOW_MINUTES,
      averageLoadTimeSeconds: pages.averageLoadTimeSeconds,
      samples: pages.loadTimeSamples,
      threshold: s.SLOW_PAGES_SECONDS,
    }]);
  }

  const cooldown = minutesMs(s.BUSINESS_ALERT_COOLDOWN_MINUTES);
  let { lastAlertAt, alerts } = state;
  for (const [type, details] of candidates) {
    const last = lastAlertAt[type];
    if (last !== undefined && at - last < cooldown) continue;
    const alert = raiseAlert(ctx, type, "warning", { kind: "global", id: state.key }, at, details);
    lastAlertAt = { ...lastAlertAt, [type]: at };
    alerts = rememberAlert(alerts, alert, GLOBAL_RECENT_ALERTS);
  }

  return version(state, { lastAlertAt, alerts, evaluatedTo: at });
}

/**
 * The boundary after `at` to evaluate: every minute while facts before it are recent, then where low_traffic's cooldown
 * ends, then none; and no later than the minute after the next fact's. Only minutes of facts decide, never the order they came in: a
 * faster partition's later facts, already here when a watermark releases `at`, count as they would have on arrival.
 */
function nextEvaluation(state: GlobalState, at: number, s: DomainSettings): number | undefined {
  const { minutes } = state;
  // The first minute at or after `at` (binary search: a lagging partition may hold days of minutes in memory).
  let i = 0;
  for (let hi = minutes.length; i < hi;) {
    const mid = (i + hi) >>> 1;
    if (minutes[mid].minute < at) i = mid + 1;
    else hi = mid;
  }
  // Memory reaches back the retention from every source's watermark, so a minute that decides here is in it.
  const before = i > 0 ? minutes[i - 1].minute : -Infinity;
  const rearm = i < minutes.length ? minutes[i].minute + MINUTE : Infinity;
  const longest = Math.max(
    s.LOW_CONVERSION_WINDOW_MINUTES,
    s.HIGH_ABANDONMENT_WINDOW_MINUTES,
    s.LOW_TRAFFIC_WINDOW_MINUTES,
    s.SLOW_PAGES_WINDOW_MINUTES,
  );
  let next = rearm;
  if (at <= before + (longest + 1) * MINUTE) next = at + MINUTE;
  else if (pageViewBefore(state, at) && at <= before + minutesMs(s.ANALYTICS_RETENTION_MINUTES)) {
    // Every window is empty from here to the next fact, so only low_traffic can be raised, and only its cooldown
    // decides when: the boundary it ends at. A cadence counted from `at` skipped it (a quiet spell whose cooldown
    // ended before traffic resumed raised nothing).
    const last = state.lastAlertAt["low_traffic"] ?? -Infinity;
    next = Math.min(rearm, Math.max(at + MINUTE, last + minutesMs(s.BUSINESS_ALERT_COOLDOWN_MINUTES)));
  }
  return next === Infinity ? undefined : next;
}

/** Whether a page view dated before `at` was seen: `low_traffic` waits for one (a shop not tracking pages has none). */
function pageViewBefore(state: GlobalState, at: number): boolean {
  return state.firstPageViewAt !== null && state.firstPageViewAt < at;
}

/** Totals of the `minutes` minutes before the latest fact's minute boundary. */
export function recentTotals(state: GlobalState, minutes: number): WindowTotals | null {
  if (state.lastEventAt === null) return null;
  const to = minuteOf(state.lastEventAt) + MINUTE;
  return windowTotals(remembered(state), to - minutes * MINUTE, to);
}

function persistGlobal(state: GlobalState, s: DomainSettings): PersistedGlobal {
  const last = (n: number) => recentTotals(state, n)!;
  const { key, ...fields } = fieldsOf(state);
  return {
    key,
    minutes: state.minutes.map(persistRollup),
    ...fields,
    dedupe: persistDedupe(state.dedupe),
    realtime: state.lastEventAt === null ? null : { last1: last(1), last5: last(5), last15: last(15) },
    revenueByCategory: state.lastEventAt === null ? [] : revenueByCategoryWindows(
      remembered(state),
      s.CATEGORY_WINDOW_MINUTES,
      CATEGORY_WINDOWS_SHOWN,
      minuteOf(state.lastEventAt) + MINUTE,
    ),
  };
}

function restoreGlobal(data: unknown): GlobalState {
  const { realtime: _r, revenueByCategory: _c, minutes, dedupe, pageViewsSeen, ...rest } = data as
    & PersistedGlobal
    & { readonly pageViewsSeen?: boolean };
  // States persisted before firstPageViewAt was kept said only whether a page view had arrived.
  const firstPageViewAt = rest.firstPageViewAt !== undefined
    ? rest.firstPageViewAt
    : pageViewsSeen
    ? rest.firstEventAt
    : null;
  const state = version(initialGlobal(), {
    ...rest,
    firstPageViewAt,
    evaluatedTo: rest.evaluatedTo !== undefined ? rest.evaluatedTo : evaluatedBefore(rest.lastEventAt, rest.heldFrom),
    dedupe: restoreDedupe(dedupe),
  });
  return version(state, {}, split((minutes ?? []).map(restoreRollup), state.lastEventAt));
}

/**
 * For a state persisted before evaluatedTo was kept (2026-12-05): the latest boundary before the latest fact, which
 * the clock had passed, unless held. Null there let the first late fact set the timer back and evaluate minutes again.
 */
function evaluatedBefore(lastEventAt: number | null | undefined, heldFrom: number | null | undefined): number | null {
  if (lastEventAt === null || lastEventAt === undefined) return null;
  const passed = minuteOf(lastEventAt - 1);
  return heldFrom === null || heldFrom === undefined ? passed : Math.min(passed, heldFrom - MINUTE);
}
