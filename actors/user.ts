/**
 * The user actor: one per userId, fed by the `events` topic in partition order.
 * Pure logic: state in, state out; effects only through the context.
 */
import type { ActorLogic } from "../engine/actor.ts";
import { decodeEvent } from "./decode.ts";
import type { StoredEvent } from "./events.ts";

/** How many recently viewed products a user's state keeps. */
export const RECENT_PRODUCTS_LIMIT = 20;

/** Everything the engine knows about one user. */
export interface UserState {
  readonly userId: string;
  readonly eventCount: number;
  readonly productViews: number;
  /** Most recent first, without duplicates, at most RECENT_PRODUCTS_LIMIT. */
  readonly recentProducts: readonly string[];
  readonly firstSeenAt: string | null;
  readonly lastSeenAt: string | null;
}

function initial(userId: string): UserState {
  return { userId, eventCount: 0, productViews: 0, recentProducts: [], firstSeenAt: null, lastSeenAt: null };
}

function handle(state: UserState, event: StoredEvent): UserState {
  const seen = {
    eventCount: state.eventCount + 1,
    firstSeenAt: state.firstSeenAt ?? event.occurredAt,
    lastSeenAt: state.lastSeenAt && state.lastSeenAt > event.occurredAt ? state.lastSeenAt : event.occurredAt,
  };
  if (event.type === "product_viewed") {
    const productId = event.properties.productId;
    const recent = [productId, ...state.recentProducts.filter((p) => p !== productId)].slice(0, RECENT_PRODUCTS_LIMIT);
    return { ...state, ...seen, productViews: state.productViews + 1, recentProducts: recent };
  }
  return { ...state, ...seen };
}

/** The user actor's logic, as the runtime consumes it. */
export const userLogic: ActorLogic<UserState, StoredEvent> = {
  kind: "user",
  initial,
  decode: decodeEvent,
  eventTime: (event) => Date.parse(event.occurredAt),
  handle: (state, event) => handle(state, event),
  persist: (state) => state,
  restore: (data) => data as UserState,
};
