/** The three actor types of the domain, built from one settings object. */
import type { ActorLogic, AnyActorLogic } from "../engine/actor.ts";
import type { Topics } from "../engine/config.ts";
import type { StoredEvent } from "./events.ts";
import type { GlobalMessage, ProductMessage } from "./facts.ts";
import { createGlobalLogic, type GlobalState } from "./global.ts";
import { createProductLogic } from "./product.ts";
import type { ProductState } from "./product_state.ts";
import { DEFAULT_DOMAIN_SETTINGS, type DomainSettings } from "./settings.ts";
import { createUserLogic } from "./user.ts";
import type { UserState } from "./user_state.ts";

/** The logics, by the topic that feeds them: events → user, product-events → product, analytics → global. */
export interface DomainLogics {
  readonly user: ActorLogic<UserState, StoredEvent>;
  readonly product: ActorLogic<ProductState, ProductMessage>;
  readonly global: ActorLogic<GlobalState, GlobalMessage>;
}

/** Builds the three logics with `settings`. */
export function createDomainLogics(settings: DomainSettings = DEFAULT_DOMAIN_SETTINGS): DomainLogics {
  return {
    user: createUserLogic(settings),
    product: createProductLogic(settings),
    global: createGlobalLogic(settings),
  };
}

/** The runtime's topic → logic map: the one wiring of which topic feeds which actor type, for the engine and its tests. */
export function logicsByTopic(topics: Topics, logics: DomainLogics): Map<string, AnyActorLogic> {
  return new Map<string, AnyActorLogic>([
    [topics.events, logics.user],
    [topics.productEvents, logics.product],
    [topics.analytics, logics.global],
  ]);
}
