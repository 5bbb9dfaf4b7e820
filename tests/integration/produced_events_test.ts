/**
 * Services may produce events straight to the `events` topic (SPEC, "Who uses it"), without the HTTP
 * edge: on each log, records written with the log's own producer, as such a service would write them.
 */
import assert from "node:assert/strict";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { collect, type Collector } from "../helpers/collector.ts";
import { forEachLog } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

forEachLog(
  "events produced straight to the log get the HTTP edge's defaults; one keyed by another user is dead-lettered",
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    const { producer, createConsumer } = engine.clients;
    let dlq: Collector | undefined;
    try {
      dlq = await collect(createConsumer(`${config.GROUP_ID}.dlq-reader`), [topics.dlq]);
      const view = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
        JSON.stringify({ type: "product_viewed", userId: "carol", properties, ...extra });
      const id = "3B241101-E2BB-4255-8CAF-4136C566A962";
      await producer.append([
        // No eventId, no occurredAt: what the SPEC's envelope makes optional.
        { topic: topics.events, key: "carol", value: view({ productId: "sku-1" }) },
        // An id in upper case and a time with an offset; then the same id in lower case, a retry.
        {
          topic: topics.events,
          key: "carol",
          value: view({ productId: "sku-2" }, { eventId: id, occurredAt: "2026-11-22T12:00:00+02:00" }),
        },
        { topic: topics.events, key: "carol", value: view({ productId: "sku-2" }, { eventId: id.toLowerCase() }) },
        // Keyed by the wrong user: it would have reached erin's actor.
        {
          topic: topics.events,
          key: "erin",
          value: JSON.stringify({ type: "page_viewed", userId: "dave", properties: { url: "/" } }),
        },
      ]);
      const carol = await eventually("carol's views", async () => {
        const response = await fetch(`${engine.url}/v1/users/carol`);
        const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
        return body?.productViews === 2 ? body : undefined;
      });
      assert.equal(carol.productViews, 2, "the retried id counted once");
      const dead = await eventually("the mis-keyed event in the DLQ", () => Promise.resolve(dlq!.records[0]));
      assert.equal(dead.key, "erin");
      assert.equal(dead.headers[DLQ_HEADERS.errorCode], "validation_failed");
      assert.match(dead.headers[DLQ_HEADERS.errorMessage], /userId: the record's key must be the event's userId/);
      for (const user of ["erin", "dave"]) {
        const response = await fetch(`${engine.url}/v1/users/${user}`);
        await response.body?.cancel();
        assert.equal(response.status, 404, `${user} has no state`);
      }
      assert.equal(dlq.records.length, 1, "nothing else was dead-lettered");
    } finally {
      await dlq?.stop();
      await engine.stop();
    }
  },
);

forEachLog(
  "an inventory_updated produced straight to `events`, keyed by its product, reaches the product's stock",
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    try {
      await engine.clients.producer.append([{
        topic: topics.events,
        key: "sku-9",
        value: JSON.stringify({ type: "inventory_updated", properties: { productId: "sku-9", stock: 3 } }),
      }]);
      const product = await eventually("sku-9's stock", async () => {
        const response = await fetch(`${engine.url}/v1/products/sku-9`);
        const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
        return body?.stock === 3 ? body : undefined;
      });
      assert.equal(product.eventCount, 1);
      const alerts = await eventually("its low_inventory alert", async () => {
        const body = await (await fetch(`${engine.url}/v1/alerts?type=low_inventory`)).json();
        return body.items?.length > 0 ? body.items : undefined;
      });
      assert.deepEqual(alerts.map((a: { subject: { id: string } }) => a.subject.id), ["sku-9"]);
      // The user key it passed through (its outputs are published, so that partition has checkpointed) keeps no user.
      const user = await fetch(`${engine.url}/v1/users/sku-9`);
      await user.body?.cancel();
      assert.equal(user.status, 404);
    } finally {
      await engine.stop();
    }
  },
);
