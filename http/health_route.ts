/** GET /healthz: liveness — the process is up and serving HTTP. */
import { z } from "zod";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import type { RouteHandler } from "./router.ts";

/** Body of a liveness answer. */
export const healthSchema = z.object({ status: z.literal("ok") }).meta({ id: "Health" });

/** Handler for GET /healthz. */
export const healthRoute: RouteHandler = (): Response =>
  Response.json({ status: "ok" } satisfies z.output<typeof healthSchema>);

/** The route's OpenAPI operation. */
export const healthRouteDoc: OperationDoc = {
  operationId: "getHealth",
  summary: "Liveness: the process is up",
  tags: ["operations"],
  responses: { 200: { description: "Alive", content: { [JSON_CONTENT_TYPE]: { schema: healthSchema } } } },
};
