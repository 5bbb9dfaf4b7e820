/** GET /readyz and GET /metrics: readiness for load balancers, metrics for Prometheus. */
import { z } from "zod";
import { JSON_CONTENT_TYPE } from "./body.ts";
import type { OperationDoc } from "./openapi.ts";
import { RETRY_AFTER_S } from "./problem.ts";
import type { Route } from "./router.ts";

/** The outcome of one readiness check. */
export type CheckResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Named readiness checks, each answering within its own deadline. */
export type ReadinessChecks = Readonly<Record<string, () => Promise<CheckResult>>>;

/** Longest a single readiness check may take before it counts as failed. */
export const READINESS_CHECK_TIMEOUT_MS = 2_000;

/** How long a readiness check may take, and the clock that times it (tests set both). */
export interface CheckTiming {
  readonly timeoutMs: number;
  readonly now: () => number;
}

const DEFAULT_TIMING: CheckTiming = { timeoutMs: READINESS_CHECK_TIMEOUT_MS, now: () => Date.now() };

/** A check's run that has not answered yet, with when it was asked. */
interface CheckInFlight {
  readonly answer: Promise<CheckResult>;
  readonly since: number;
}

/**
 * Runs each check one at a time: a probe arriving while the check's last run is unanswered waits for that run (at most
 * the deadline) instead of asking again. Each probe on a frozen PostgreSQL used to queue one more query on the pool,
 * all run once it answered, in front of the checkpoints; a load balancer probing every second piled them up.
 */
function checkRunner(checks: ReadinessChecks, timing: CheckTiming): (name: string) => Promise<CheckResult> {
  const inFlight = new Map<string, CheckInFlight>();
  return async (name) => {
    let run = inFlight.get(name);
    if (run === undefined) {
      const answer = Promise.resolve()
        .then(checks[name])
        .catch((error): CheckResult => ({ ok: false, reason: (error as Error).message }));
      const started: CheckInFlight = { answer, since: timing.now() };
      inFlight.set(name, started);
      answer.finally(() => {
        if (inFlight.get(name) === started) inFlight.delete(name);
      });
      run = started;
    }
    const since = run.since;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<CheckResult>((resolve) => {
      // The time the run has gone unanswered: a probe that joined it late says how long the check has waited.
      timer = setTimeout(
        () => resolve({ ok: false, reason: `no answer within ${Math.max(timing.now() - since, timing.timeoutMs)} ms` }),
        timing.timeoutMs,
      );
    });
    try {
      return await Promise.race([run.answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Body of a readiness answer, 200 or 503 alike. */
export const readinessSchema = z.object({
  status: z.enum(["ready", "not ready"]),
  checks: z.record(z.string(), z.string()).describe("Each check (database, log, consumer): `ok`, or why it failed"),
}).meta({ id: "Readiness" });

/** Media type of the metrics (Prometheus text exposition format). */
const METRICS_CONTENT_TYPE = "text/plain";

const readinessDoc: OperationDoc = {
  operationId: "getReadiness",
  summary: "Readiness: the database, the log and the consumer answer",
  tags: ["operations"],
  responses: {
    200: { description: "Ready", content: { [JSON_CONTENT_TYPE]: { schema: readinessSchema } } },
    503: {
      description: "Not ready; `checks` names the failing check",
      content: { [JSON_CONTENT_TYPE]: { schema: readinessSchema } },
      headers: { "Retry-After": { description: "Seconds to wait before asking again", schema: z.number().int() } },
    },
  },
};

const metricsDoc: OperationDoc = {
  operationId: "getMetrics",
  summary: "Prometheus metrics of this instance",
  tags: ["operations"],
  responses: {
    200: {
      description: "Metrics in the Prometheus text exposition format (version 0.0.4)",
      content: { [METRICS_CONTENT_TYPE]: { schema: z.string() } },
    },
  },
};

/** Routes for readiness and metrics. */
export function operationsRoutes(deps: {
  readonly checks: ReadinessChecks;
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
  readonly checkTiming?: CheckTiming;
}): Route[] {
  const runCheck = checkRunner(deps.checks, deps.checkTiming ?? DEFAULT_TIMING);
  return [
    {
      method: "GET",
      path: "/readyz",
      handler: async () => {
        const names = Object.keys(deps.checks);
        const results = await Promise.all(names.map(runCheck));
        const checks = Object.fromEntries(names.map((name, i) => [name, results[i].ok ? "ok" : results[i].reason]));
        const ready = results.every((r) => r.ok);
        return Response.json(
          { status: ready ? "ready" : "not ready", checks } satisfies z.output<typeof readinessSchema>,
          { status: ready ? 200 : 503, headers: ready ? {} : { "retry-after": String(RETRY_AFTER_S) } },
        );
      },
      doc: readinessDoc,
    },
    {
      method: "GET",
      path: "/metrics",
      handler: async () => {
        const { body, contentType } = await deps.metrics();
        return new Response(body, { headers: { "content-type": contentType } });
      },
      doc: metricsDoc,
    },
  ];
}
