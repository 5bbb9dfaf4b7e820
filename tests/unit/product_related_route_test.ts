/**
 * GET /v1/products/{id}/related: every counted candidate (up to RELATED_CANDIDATES co-viewed and as
 * many co-bought) is rankable, as `limit` (1–100) promises, not only the short list GET /v1/products/{id} shows.
 */
import assert from "node:assert/strict";
import type { StateReader } from "../../engine/state_reader.ts";
import { domainSettings } from "../../actors/settings.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

Deno.test("related products: limit returns as many ranked candidates as the product counts, co-buys weighted", async () => {
  const b = new EventBuilder();
  const events = [];
  // 30 shoppers view p1 then a product of their own; shopper i views q<i> (i + 1) times in separate sessions,
  // so q29 is the most co-viewed; one order pairs p1 with b1 (a co-buy weighs RECS_CO_BOUGHT_WEIGHT co-views, 5 here,
  // not the default 3: the route ranks with the configured weight).
  for (let i = 0; i < 30; i++) {
    for (let k = 0; k <= i % 3; k++) {
      const t = (i * 3 + k) * 3600; // a session each (an hour apart)
      events.push(
        b.event("product_viewed", `u${i}`, t, { productId: "p1" }),
        b.event("product_viewed", `u${i}`, t + 1, { productId: `q${String(i).padStart(2, "0")}` }),
      );
    }
  }
  events.push(b.event("order_completed", "buyer", 0, {
    orderId: "o1",
    items: [{ productId: "p1", quantity: 1, price: 1 }, { productId: "b1", quantity: 1, price: 1 }],
    total: 2,
  }));
  const settings = domainSettings({ RECS_CO_BOUGHT_WEIGHT: 5 });
  const r = await fold(events, { settings });
  const state = r.persisted("product", "p1");
  // The independent expectation: each q counted once per session, b1 once as a co-buy (× 5).
  const expected = [
    { productId: "b1", score: 5 },
    ...Array.from({ length: 30 }, (_, i) => ({ productId: `q${String(i).padStart(2, "0")}`, score: (i % 3) + 1 }))
      .sort((x, y) => y.score - x.score || (x.productId < y.productId ? -1 : 1)),
  ].sort((x, y) => y.score - x.score || (x.productId < y.productId ? -1 : 1));
  const reader: StateReader = { read: () => Promise.resolve({ state, source: "memory" }) };
  const { handle } = await httpFixture(reader, undefined, undefined, { coBoughtWeight: 5 });
  const get = async (query: string) => {
    const response = await handle(new Request(`${BASE}/v1/products/p1/related${query}`));
    assert.equal(response.status, 200);
    return (await response.json()).items as { productId: string; score: number }[];
  };
  assert.deepEqual(await get("?limit=100"), expected, "all 31 candidates");
  assert.deepEqual(await get("?limit=25"), expected.slice(0, 25));
  assert.deepEqual(await get(""), expected.slice(0, 10), "10 by default");
});
