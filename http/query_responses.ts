/**
 * The answers of the list query routes (alerts, recommendations, related products), as zod schemas:
 * GET /openapi.json documents their 200 bodies from these, so that a client generated from the
 * document gets their fields, and tests hold the routes' real answers to them.
 */
import { z } from "zod";
import { ALERT_TYPES } from "../actors/alerts.ts";

const time = z.iso.datetime({ offset: true });

/** A product and its co-occurrence score, as recommendations and related products list them. */
export const scoredProduct = z.object({ productId: z.string(), score: z.number() });

/** GET /v1/alerts: stored alerts, newest first, as published on the `alerts` topic. */
export const alertsAnswer = z.object({
  items: z.array(
    z.object({
      alertId: z.string().describe("Derived from the input that raised it: a replay re-produces the same id"),
      type: z.enum(ALERT_TYPES),
      severity: z.enum(["info", "warning", "critical"]),
      subject: z.object({ kind: z.string(), id: z.string() }).describe(
        "What the alert is about: a user, a product or global",
      ),
      occurredAt: time,
      details: z.record(z.string(), z.unknown()).describe("The rule's figures, per alert type"),
    }).meta({ id: "Alert" }),
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
  asOf: time.optional().describe("Time of the checkpoint, when answered from one"),
}).meta({ id: "RelatedProducts" });
