/** GET /readyz and GET /metrics: readiness for load balancers, metrics for Prometheus. */
import type { Route } from "./router.ts";

/** The outcome of one readiness check. */
export type CheckResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Named readiness checks, each answering within its own deadline. */
export type ReadinessChecks = Readonly<Record<string, () => Promise<CheckResult>>>;

/** Longest a single readiness check may take before it counts as failed. */
export const READINESS_CHECK_TIMEOUT_MS = 2_000;

async function runCheck(check: () => Promise<CheckResult>): Promise<CheckResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: `no answer within ${READINESS_CHECK_TIMEOUT_MS} ms` }),
      READINESS_CHECK_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([
      check().catch((error): CheckResult => ({ ok: false, reason: (error as Error).message })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Routes for readiness and metrics. */
export function operationsRoutes(deps: {
  readonly checks: ReadinessChecks;
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
}): Route[] {
  return [
    {
      method: "GET",
      path: "/readyz",
      handler: async () => {
        const names = Object.keys(deps.checks);
        const results = await Promise.all(names.map((name) => runCheck(deps.checks[name])));
        const checks = Object.fromEntries(names.map((name, i) => [name, results[i].ok ? "ok" : results[i].reason]));
        const ready = results.every((r) => r.ok);
        return Response.json(
          { status: ready ? "ready" : "not ready", checks },
          { status: ready ? 200 : 503, headers: ready ? {} : { "retry-after": "5" } },
        );
      },
    },
    {
      method: "GET",
      path: "/metrics",
      handler: async () => {
        const { body, contentType } = await deps.metrics();
        return new Response(body, { headers: { "content-type": contentType } });
      },
    },
  ];
}
