/**
 * The product actor: one per productId, fed by the `product-events` topic, so that each product
 * has exactly one owner. Pure logic: state in, state out.
 */
import type { ActorLogic } from "../engine/actor.ts";
import { decodeEvent } from "./decode.ts";
import type { StoredEvent } from "./events.ts";

/** What the engine knows about one product. */
export interface ProductState {
  readonly productId: string;
  /** Units in stock as last reported; null until an inventory update arrives. */
  readonly stock: number | null;
  readonly stockUpdatedAt: string | null;
  readonly eventCount: number;
}

function initial(productId: string): ProductState {
  return { productId, stock: null, stockUpdatedAt: null, eventCount: 0 };
}

function handle(state: ProductState, event: StoredEvent): ProductState {
  const counted = { ...state, eventCount: state.eventCount + 1 };
  if (event.type === "inventory_updated") {
    return { ...counted, stock: event.properties.stock, stockUpdatedAt: event.occurredAt };
  }
  return counted;
}

/** The product actor's logic, as the runtime consumes it. */
export const productLogic: ActorLogic<ProductState, StoredEvent> = {
  kind: "product",
  initial,
  decode: decodeEvent,
  eventTime: (event) => Date.parse(event.occurredAt),
  handle: (state, event) => handle(state, event),
  persist: (state) => state,
  restore: (data) => data as ProductState,
};
