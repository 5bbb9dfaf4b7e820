/**
 * The contracts of the `alerts` and `recommendations` topics (SPEC § Topics). The runtime also
 * projects them into PostgreSQL for queries; payloads that do not match are published but not
 * projected, and logged.
 */
import { z } from "zod";

/** An alert as published on `alerts`. */
export const alertSchema = z.object({
  alertId: z.string().min(1),
  type: z.string().min(1),
  severity: z.string().min(1),
  subject: z.object({ kind: z.string().min(1), id: z.string().min(1) }),
  occurredAt: z.iso.datetime({ offset: true }),
  details: z.record(z.string(), z.unknown()).default({}),
});
/** An alert as published on `alerts`. */
export type Alert = z.output<typeof alertSchema>;

/** Recommendations as published on `recommendations`. */
export const recommendationSchema = z.object({
  userId: z.string().min(1),
  basedOn: z.unknown(),
  items: z.array(z.object({ productId: z.string(), score: z.number() })),
  generatedAt: z.iso.datetime({ offset: true }),
});
/** Recommendations as published on `recommendations`. */
export type Recommendation = z.output<typeof recommendationSchema>;

/** Output projections a checkpoint writes together with the states. */
export interface Projections {
  readonly alerts: readonly Alert[];
  readonly recommendations: readonly Recommendation[];
}

/** No projections. */
export const NO_PROJECTIONS: Projections = Object.freeze({ alerts: [], recommendations: [] });
