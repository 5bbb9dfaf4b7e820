/**
 * The list query routes answer what GET /openapi.json documents for them (http/query_responses.ts):
 * their real answers, from database rows and actor states shaped as the engine stores them, parse
 * with the schemas the document is generated from, and carry no field it does not name.
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { alertsAnswer, recommendationsAnswer, relatedAnswer } from "../../http/query_responses.ts";
import { BASE, httpFixture } from "./http_fixture.ts";
import type { StateReader } from "../../engine/state_reader.ts";

/** A database that answers every query with `rows`. */
function sqlAnswering(rows: unknown[]): Sql {
  return ((_strings: TemplateStringsArray, ..._values: unknown[]) => Promise.resolve(rows)) as unknown as Sql;
}

const reader: StateReader = {
  read: (kind, key) =>
    Promise.resolve(
      kind === "user" && key === "alice"
        ? { state: { userId: "alice" }, source: "memory" }
        : kind === "product" && key === "p1"
        ? {
          state: { productId: "p1", coViewed: { p2: 3, p3: 1 }, coBought: { p3: 1 } },
          source: "checkpoint",
          asOf: "2026-11-22T11:59:00.000Z",
        }
        : null,
    ),
};

async function answer(path: string, rows: unknown[]): Promise<unknown> {
  const { handle } = await httpFixture(reader, undefined, sqlAnswering(rows));
  const response = await handle(new Request(`${BASE}${path}`));
  assert.equal(response.status, 200, path);
  return await response.json();
}

Deno.test("GET /v1/alerts answers the documented AlertList", async () => {
  const row = {
    alert_id: "timer-user-bob-cart-1-cart_abandoned",
    type: "cart_abandoned",
    severity: "info",
    subject_kind: "user",
    subject_id: "bob",
    occurred_at: new Date("2026-11-22T11:00:00Z"),
    details: { units: 1, cartValue: 5 },
  };
  const body = await answer("/v1/alerts", [row]);
  alertsAnswer.strict().parse(body);
  const [item] = (body as { items: Record<string, unknown>[] }).items;
  assert.deepEqual(Object.keys(item).sort(), Object.keys(alertsAnswer.shape.items.element.shape).sort());
});

Deno.test("GET /v1/users/{id}/recommendations answers the documented Recommendations, with or without any", async () => {
  const stored = {
    payload: {
      userId: "alice",
      basedOn: "p1",
      recommendationId: "events-3-17-rec",
      items: [{ productId: "p2", score: 3 }],
      generatedAt: "2026-11-22T11:00:00.000Z",
    },
    generated_at: new Date("2026-11-22T11:00:00Z"),
  };
  recommendationsAnswer.strict().parse(await answer("/v1/users/alice/recommendations", [stored]));
  recommendationsAnswer.strict().parse(await answer("/v1/users/alice/recommendations", []));
});

Deno.test("GET /v1/products/{id}/related answers the documented RelatedProducts", async () => {
  const body = relatedAnswer.strict().parse(await answer("/v1/products/p1/related", []));
  // p3: one co-view and one co-buy (weight 3) = 4, ahead of p2's three co-views.
  assert.deepEqual(body.items, [{ productId: "p3", score: 4 }, { productId: "p2", score: 3 }]);
});

Deno.test("query answers, their problems and the operations' answers tell caches not to keep them (no-store)", async () => {
  // Live state and figures change with every event: a proxy's cache must not serve a user or product from minutes ago.
  const { handle } = await httpFixture(reader, undefined, sqlAnswering([]));
  for (
    const [path, status] of [
      ["/v1/users/alice", 200],
      ["/v1/users/alice/recommendations", 200],
      ["/v1/products/nobody", 404],
      ["/v1/products/p1/related", 200],
      ["/v1/analytics/realtime", 200],
      ["/v1/analytics/funnel?window=1h", 200],
      ["/v1/analytics/top-products?window=all", 200],
      ["/v1/alerts", 200],
      ["/v1/users/nobody", 404],
      ["/v1/alerts?limit=0", 400],
      ["/v1/nothing", 404],
      ["/healthz", 200],
      ["/readyz", 200],
      ["/openapi.json", 200],
    ] as const
  ) {
    for (const method of ["GET", "HEAD"]) {
      const response = await handle(new Request(`${BASE}${path}`, { method }));
      await response.body?.cancel();
      assert.equal(response.status, status, `${method} ${path}`);
      assert.equal(response.headers.get("cache-control"), "no-store", `${method} ${path}`);
    }
  }
});
