/**
 * A scripted day of shoppers through HTTP, on each log. A consumer of its own group reads `alerts`
 * and `recommendations` from the log: the user and product alerts the reference fold predicts
 * arrive, each exactly once; recommendations arrive once each and respect their exclusions.
 */
import assert from "node:assert/strict";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { collect, type Collector } from "../helpers/collector.ts";
import { fold } from "../helpers/fold.ts";
import { forEachLog } from "../helpers/modes.ts";

const MIN = 60_000;

/** The day: browsing, an abandoned cart, an abandoned checkout, a fraudulent burst, stock running out. */
function scriptedDay(t0: number): Record<string, unknown>[] {
  let n = 0;
  const events: Record<string, unknown>[] = [];
  const add = (type: string, userId: string | undefined, at: number, properties: Record<string, unknown>) => {
    const id = (++n).toString(16).padStart(12, "0");
    events.push({
      eventId: `00000000-0000-4000-8000-${id}`,
      type,
      ...(userId ? { userId } : {}),
      occurredAt: new Date(at).toISOString(),
      properties,
    });
  };
  add("inventory_updated", undefined, t0, { productId: "p9", stock: 12 });
  for (let u = 0; u < 20; u++) {
    const start = t0 + u * 5 * MIN;
    add("page_viewed", `shopper${u}`, start, { url: "/", loadTime: 1.2 });
    for (let k = 0; k < 4; k++) {
      add("product_viewed", `shopper${u}`, start + (k + 1) * 2 * MIN, { productId: `p${(u + k) % 8}`, price: 25 });
    }
  }
  add("product_added_to_cart", "alice", t0 + 60 * MIN, { productId: "p1", price: 25, quantity: 2 });
  add("product_added_to_cart", "bob", t0 + 61 * MIN, { productId: "p2", price: 40 });
  add("checkout_started", "bob", t0 + 65 * MIN, { cartValue: 40 });
  const methods = ["card", "paypal", "crypto", "giftcard"];
  for (let i = 0; i < 4; i++) {
    add("order_completed", "carol", t0 + 90 * MIN + i * MIN, {
      orderId: `carol-${i}`,
      items: [{ productId: "p5", quantity: 1, price: 1500 }],
      total: 1500,
      paymentMethod: methods[i],
    });
  }
  add("order_completed", "dave", t0 + 120 * MIN, {
    orderId: "d1",
    items: [{ productId: "p9", quantity: 3, price: 10 }],
    total: 30,
  });
  add("order_completed", "erin", t0 + 130 * MIN, {
    orderId: "e1",
    items: [{ productId: "p9", quantity: 9, price: 10 }],
    total: 90,
  });
  // frank bought p1 and has p2 in his cart when he views p3, whose best co-viewed products include both.
  add("order_completed", "frank", t0 + 150 * MIN, {
    orderId: "f1",
    items: [{ productId: "p1", quantity: 1, price: 25 }],
    total: 25,
  });
  add("product_added_to_cart", "frank", t0 + 152 * MIN, { productId: "p2", price: 25 });
  add("product_viewed", "frank", t0 + 155 * MIN, { productId: "p3", price: 25 });
  return events.sort((a, b) => String(a.occurredAt).localeCompare(String(b.occurredAt)));
}

forEachLog(
  "a scripted day over HTTP yields the predicted user and product alerts exactly once, and clean recommendations",
  { settings: { CLOCK_IDLE_MS: "500" } },
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    let reader: Collector | undefined;
    try {
      const t0 = Date.now() - 6 * 60 * MIN;
      const day = scriptedDay(t0);
      const response = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(day),
      });
      assert.equal(response.status, 202, await response.text());

      // The reference: the same events folded with the same partitioning, clocks advanced to now.
      const stored = day.map((e) => ({ ...e, receivedAt: e.occurredAt }));
      const expected = await fold(stored, { partitions: config.PARTITIONS, until: Date.now() });
      const expectedAlerts = expected.alerts
        .filter((a) => a.subject.kind !== "global")
        .map((a) => `${a.type}:${a.subject.kind}:${a.subject.id}`)
        .sort();
      for (const type of ["cart_abandoned", "checkout_abandoned", "fraud_suspected", "low_inventory", "out_of_stock"]) {
        assert.ok(expectedAlerts.some((a) => a.startsWith(`${type}:`)), `the day is built to raise ${type}`);
      }

      reader = await collect(engine.clients.createConsumer(`${config.GROUP_ID}-reader`), [
        topics.alerts,
        topics.recommendations,
      ]);
      const alertsNow = () =>
        reader!.json<{ alertId: string; type: string; subject: { kind: string; id: string } }>(topics.alerts);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const got = alertsNow().filter((a) => a.subject.kind !== "global").length;
        if (got >= expectedAlerts.length) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await new Promise((resolve) => setTimeout(resolve, 3_000)); // anything duplicated would show up now

      const alerts = alertsNow();
      const ids = alerts.map((a) => a.alertId);
      assert.equal(new Set(ids).size, ids.length, "every alert arrives exactly once");
      assert.deepEqual(
        alerts.filter((a) => a.subject.kind !== "global").map((a) => `${a.type}:${a.subject.kind}:${a.subject.id}`)
          .sort(),
        expectedAlerts,
      );

      const recs = reader.json<
        { recommendationId: string; userId: string; basedOn: unknown; items: { productId: string }[] }
      >(topics.recommendations);
      assert.ok(recs.length > 0, "shoppers who viewed co-viewed products got recommendations");
      assert.equal(new Set(recs.map((r) => r.recommendationId)).size, recs.length, "each recommendation once");
      for (const rec of recs) {
        const basedOn = JSON.stringify(rec.basedOn);
        assert.ok(rec.items.length > 0);
        assert.ok(rec.items.every((item) => !basedOn.includes(`"${item.productId}"`)), "never recommends its basis");
      }

      // frank's view of p3 is answered without what he bought (p1) or has in his cart (p2), and the answer
      // GET /v1/users/frank/recommendations serves is the one published, under the same id.
      const franks = recs.filter((r) => r.userId === "frank");
      assert.deepEqual(franks.map((r) => r.basedOn).sort(), ["p2", "p3"]);
      for (const rec of franks) {
        const ids = rec.items.map((item) => item.productId);
        assert.ok(ids.length > 0 && !ids.includes("p1") && !ids.includes("p2"), JSON.stringify(rec));
      }
      const onP3 = franks.find((r) => r.basedOn === "p3")!;
      let served: { recommendationId?: string; basedOn?: unknown; items: unknown[] } = { items: [] };
      while (Date.now() < deadline + 60_000 && served.recommendationId !== onP3.recommendationId) {
        const got = await fetch(`${engine.url}/v1/users/frank/recommendations`);
        served = await got.json();
        if (served.recommendationId !== onP3.recommendationId) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(served.recommendationId, onP3.recommendationId, JSON.stringify(served));
      assert.deepEqual(served.items, onP3.items);
    } finally {
      await reader?.stop();
      await engine.stop();
    }
  },
);
