/**
 * The answers of the list query routes (alerts, recommendations, related products), as zod schemas:
 * GET /openapi.json documents their 200 bodies from these, so that a client generated from the
 * document gets their fields, and tests hold the routes' real answers to them.
 */
import { z } from "zod";
import { ALERT_TYPES } from "../actors/alerts.ts";

/** An ISO 8601 time with an offset, as every answer writes times. */
export const time = z.iso.datetime({ offset: true });
/** An alert's severity. */
export const severity = z.enum(["info", "warning", "critical"]);
/** `asOf` of an answer read from a checkpoint. */
export const asOf = time.optional().describe("Time of the checkpoint, when answered from one");

/** A product and its co-occurrence score, as recommendations and related products list them. */
export const scoredProduct = z.object({ productId: z.string(), score: z.number() });

/** GET /v1/alerts: stored alerts, newest first, as published on the `alerts` topic. */
export const alertsAnswer = z.object({
  items: z.array(
    z.object({
      alertId: z.string().describe("Derived from the input that raised it: a replay re-produces the same id"),
      type: z.enum(ALERT_TYPES),
      severity,
      subject: z.object({ kind: z.string(), id: z.string() }).describe(
        "What the alert is about: a user, a product or global",
      ),
      occurredAt: time,
      details: z.record(z.string(), z.unknown()).describe("The rule's figures, per alert type"),
    }).meta({ id: "Alert" }),
  ),
  next: z.string().optional().describe(
    "Given when the page is full (`limit` alerts): pass it as `cursor` for the next page; absent on the last page. " +
      "With `order=stored`, on every page: where the alerts stored after this page's begin",
  ),
}).meta({ id: "AlertList" });

/** GET /v1/users/{id}/recommendations: the latest recommendations, as published on `recommendations`. */
export const recommendationsAnswer = z.object({
  userId: z.string(),
  items: z.array(scoredProduct).describe("Best first; empty for a known user without recommendations yet"),
  basedOn: z.string().nullable().optional().describe("The product viewed or added that they are based on"),
  recommendationId: z.string().nullable().optional().describe("The id published on the `recommendations` topic"),
  generatedAt: time.optional(),
}).meta({ id: "Recommendations" });

/** GET /v1/products/{id}/related: related products, best first. */
export const relatedAnswer = z.object({
  productId: z.string(),
  items: z.array(scoredProduct),
  source: z.enum(["memory", "checkpoint"]),
  asOf,
}).meta({ id: "RelatedProducts" });

/** Where an analytics answer's global state was read: `none` before any event. */
const analyticsSource = z.enum(["memory", "checkpoint", "none"]).describe(
  "Where the global actor's state the answer is computed from was read: `memory`, live (on this instance or, routed " +
    "there, on the instance owning the `analytics` partition); `checkpoint`, its last checkpoint, when that owner " +
    "could not be asked; `none`, before any event",
);

/** The fields of an analytics answer saying where it was read and who answered. */
const analyticsFields = {
  source: analyticsSource,
  asOf,
  instance: z.string().optional().describe(
    "The engine instance that answered: the owner of the `analytics` partition unless it could not be asked " +
      "(also the `x-engine-instance` header)",
  ),
  historyDays: z.number().int().optional().describe(
    "ANALYTICS_HISTORY_DAYS, present when the `window` asked reaches further back than that history: the figures " +
      "then cover only its last days, from `from`",
  ),
};

/** GET /v1/analytics/realtime, /funnel and /top-categories: figures of the global actor's state, and where it was read. */
export const analyticsAnswer = z.looseObject(analyticsFields).meta({
  id: "AnalyticsAnswer",
  description: "Figures computed from the global actor's state, with where that state was read",
});

/** GET /v1/analytics/top-products: as the other analytics, but `window=all` by a total reads no global state. */
export const topProductsAnswer = z.looseObject({
  ...analyticsFields,
  source: analyticsSource.optional().describe(
    "As in the other analytics answers; absent with `window=all` ranked by views, purchases or revenue, which " +
      "reads the products' checkpoints in PostgreSQL alone",
  ),
}).meta({ id: "TopProducts", description: "Products ranked over a window, with where the window's end was read" });
