/** The global actor driven directly, without a runtime, on a clock that follows its messages. */
import type { GlobalMessage } from "../../actors/facts.ts";
import {
  type AnalyticsHistoryBatch,
  createGlobalLogic,
  EVALUATE_TIMER,
  GLOBAL_KEY,
  type GlobalState,
} from "../../actors/global.ts";
import type { DomainSettings } from "../../actors/settings.ts";
import type { ActorContext, ActorLogic } from "../../engine/actor.ts";

/** A context at `clock` whose emitted outputs (JSON round-tripped) are pushed to `emitted`. */
export function contextAt(clock: number, emitted: { topic: string; value: unknown }[] = []): ActorContext {
  return {
    now: () => clock,
    emit: (topic, _key, value) => void emitted.push({ topic, value: JSON.parse(JSON.stringify(value)) }),
    outputId: (rule) => `test-${clock}-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
}

/** The global actor's handler applied to `facts` (and watermarks) in order; what it emitted to `analyticsHistory`. */
export function runGlobal(
  settings: DomainSettings,
  facts: readonly GlobalMessage[],
  from?: GlobalState,
): { state: GlobalState; history: AnalyticsHistoryBatch[]; logic: ActorLogic<GlobalState, GlobalMessage> } {
  const logic = createGlobalLogic(settings);
  let state = from ?? logic.initial(GLOBAL_KEY);
  const emitted: { topic: string; value: unknown }[] = [];
  let clock = 0;
  for (const fact of facts) {
    clock = Math.max(clock, logic.eventTime(fact));
    state = logic.handle(state, fact, contextAt(clock, emitted)) as GlobalState;
  }
  const history = emitted.filter((e) => e.topic === "analyticsHistory").map((e) => e.value as AnalyticsHistoryBatch);
  return { state, history, logic };
}

/** What the global actor emitted to `alerts`, as `driveGlobal` collects it. */
export interface DrivenAlert {
  readonly alertId: string;
  readonly type: string;
  readonly occurredAt: string;
  /** The figures of its window. */
  readonly details: Readonly<Record<string, number>>;
}

/** The global actor under `driveGlobal`: its logic, evaluation timer, collected alerts and current state. */
export interface GlobalDriver {
  readonly logic: ActorLogic<GlobalState, GlobalMessage>;
  readonly timers: Map<string, number>;
  readonly alerts: DrivenAlert[];
  /** What it emitted to `analyticsHistory` (JSON round-tripped), in order. */
  readonly history: AnalyticsHistoryBatch[];
  readonly state: GlobalState;
  /** How many messages were sent: the last one's id is `analytics-0-<sent - 1>`. */
  readonly sent: number;
  /** How many times the evaluation timer fired. */
  readonly fired: number;
  /** Moves the clock to `to` (never back) and fires the evaluation timer while it is due. */
  advanceTo(to: number): void;
  /** Handles `message` at the clock its event time moves to, with the timer fired before and after. */
  send(message: GlobalMessage): void;
  /**
   * Replaces the state with its persisted form (JSON round-tripped) restored, as a restart from a checkpoint does;
   * `edit` changes the persisted form first (a checkpoint an older version wrote).
   */
  reload(edit?: (persisted: Record<string, unknown>) => Record<string, unknown>): void;
}

/**
 * The global actor driven as the runtime drives its partition: the clock follows the messages' event time, its
 * evaluation timer fires while due on the clock (ctx.now() its deadline, ids `timer-<deadline>`) before and after
 * each message (ids `analytics-0-<n>`, n counting the messages), and its alerts and history batches are collected.
 */
export function driveGlobal(
  settings: DomainSettings,
  options: { readonly sourcesWatermark?: () => number } = {},
): GlobalDriver {
  const logic = createGlobalLogic(settings);
  let state = logic.initial(GLOBAL_KEY);
  const timers = new Map<string, number>();
  const alerts: DrivenAlert[] = [];
  const history: AnalyticsHistoryBatch[] = [];
  let clock = 0;
  let sent = 0;
  let fired = 0;
  const sourcesWatermark = options.sourcesWatermark ?? (() => -Infinity);
  const ctx = (now: number, id: string): ActorContext => ({
    now: () => now,
    emit: (topic, _key, value) => {
      if (topic === "alerts") alerts.push(value as DrivenAlert);
      if (topic === "analyticsHistory") history.push(JSON.parse(JSON.stringify(value)));
    },
    outputId: (rule) => `${id}-${rule}`,
    setTimer: (name, at) => void timers.set(name, at),
    cancelTimer: (name) => void timers.delete(name),
    timer: (name) => timers.get(name),
    sourcesWatermark,
  });
  const advanceTo = (to: number) => {
    clock = Math.max(clock, to);
    for (let at = timers.get(EVALUATE_TIMER); at !== undefined && at <= clock; at = timers.get(EVALUATE_TIMER)) {
      timers.delete(EVALUATE_TIMER);
      fired++;
      state = logic.onTimer!(state, EVALUATE_TIMER, ctx(at, `timer-${at}`)) as GlobalState;
    }
  };
  return {
    logic,
    timers,
    alerts,
    history,
    get state(): GlobalState {
      return state;
    },
    get sent(): number {
      return sent;
    },
    get fired(): number {
      return fired;
    },
    advanceTo,
    send(message: GlobalMessage): void {
      advanceTo(logic.eventTime(message));
      state = logic.handle(state, message, ctx(clock, `analytics-0-${sent++}`)) as GlobalState;
      advanceTo(clock);
    },
    reload(edit = (persisted) => persisted): void {
      state = logic.restore(edit(JSON.parse(JSON.stringify(logic.persist(state)))));
    },
  };
}
