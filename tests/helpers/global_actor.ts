/** The global actor driven directly, without a runtime: its handler over facts, on a clock that follows them. */
import type { AnalyticsFact, GlobalMessage } from "../../actors/facts.ts";
import { type AnalyticsHistoryBatch, createGlobalLogic, GLOBAL_KEY, type GlobalState } from "../../actors/global.ts";
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

/** The global actor's handler applied to `facts` in order; what it emitted to `analyticsHistory`. */
export function runGlobal(
  settings: DomainSettings,
  facts: readonly AnalyticsFact[],
  from?: GlobalState,
): { state: GlobalState; history: AnalyticsHistoryBatch[]; logic: ActorLogic<GlobalState, GlobalMessage> } {
  const logic = createGlobalLogic(settings);
  let state = from ?? logic.initial(GLOBAL_KEY);
  const emitted: { topic: string; value: unknown }[] = [];
  let clock = 0;
  for (const fact of facts) {
    clock = Math.max(clock, fact.at);
    state = logic.handle(state, fact, contextAt(clock, emitted)) as GlobalState;
  }
  const history = emitted.filter((e) => e.topic === "analyticsHistory").map((e) => e.value as AnalyticsHistoryBatch);
  return { state, history, logic };
}
