/**
 * What a user handler needs while it applies one event: the context, the settings, the event's
 * time and session, and helpers that emit facts with ids derived from the input. A product
 * receives at most one fact per input event (receivers dedupe by source offset, dedupe.ts).
 */
import type { ActorContext } from "../engine/actor.ts";
import type { AnalyticsFact, ProductFact } from "./facts.ts";
import { type FunnelStage, NO_STAGES } from "./session.ts";
import type { DomainSettings } from "./settings.ts";

/** Fields every product fact of this step shares. */
type Filled = "factId" | "userId" | "session" | "at" | "productId";
/** A product fact before the step fills in its common fields. */
export type ProductFactBody = ProductFact extends infer F ? F extends ProductFact ? Omit<F, Filled> : never : never;
/** An activity fact before the step fills in its common fields. */
export type ActivityBody = Omit<
  Extract<AnalyticsFact, { fact: "activity" }>,
  "fact" | "factId" | "userId" | "session" | "at"
>;

/** One event being applied. */
export class UserStep {
  #facts = 0;
  /** Products sent a fact by this step; most steps send one, so the set is made for the second. */
  #first: string | undefined;
  #sent: Set<string> | undefined;

  constructor(
    readonly ctx: ActorContext,
    readonly settings: DomainSettings,
    readonly userId: string,
    /** Event time, epoch ms. */
    readonly at: number,
    /** `<userId>/<session number>` (a late event's past session), or `<userId>/late` for one older than those remembered. */
    readonly session: string,
    /** The event belongs to a past session (arrived out of order): it does not touch the current one. */
    readonly late: boolean,
    /** Funnel stages the session reached for the first time with this event (reported with its activity). */
    readonly reached: readonly FunnelStage[] = NO_STAGES,
    /** When the event was received, epoch ms (reported with its activity when before `at`). */
    readonly receivedAt: number = at,
  ) {}

  /** Forwards a fact to the product's owner on `product-events`. */
  toProduct(productId: string, body: ProductFactBody): void {
    if (this.#first === productId || this.#sent?.has(productId)) {
      throw new Error(`one fact per product per event: ${productId} got two`);
    }
    if (this.#first === undefined) this.#first = productId;
    else (this.#sent ??= new Set()).add(productId);
    const fact = {
      ...body,
      factId: this.ctx.outputId(`p${this.#facts++}`),
      userId: this.userId,
      session: this.session,
      at: this.at,
      ...(this.receivedAt < this.at ? { receivedAt: this.receivedAt } : {}),
      productId,
    };
    this.ctx.emit("productEvents", productId, fact);
  }

  /** Reports the event to the global actor on `analytics`. */
  toAnalytics(body: ActivityBody): void {
    const fact: AnalyticsFact = {
      fact: "activity",
      factId: this.ctx.outputId("a"),
      at: this.at,
      userId: this.userId,
      session: this.session,
      ...(this.receivedAt < this.at ? { receivedAt: this.receivedAt } : {}),
      ...body,
      ...(this.reached.length > 0 ? { reached: [...this.reached] } : {}),
    };
    this.ctx.emit("analytics", "global", fact);
  }
}
