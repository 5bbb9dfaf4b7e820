/**
 * The HTTP API of a real engine, on each log, checked against the /openapi.json it serves: users and products with
 * unusual ids (spaces, `%`, `/`, `?`, `#`, `+`, unicode in NFC and NFD, 128 characters, ids that differ only in case)
 * are posted, then asked for percent-encoded as a client library encodes them, each answered as its own key; and every
 * route's answer, problems included, conforms to the schema the document gives for its status and content type.
 */
import assert from "node:assert/strict";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { type JsonSchema, schemaProblems } from "../helpers/json_schema.ts";
import { forEachLog } from "../helpers/modes.ts";
import { ODD_IDS } from "../helpers/odd_ids.ts";
import { eventually } from "../helpers/services.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const MIN = 60_000;

/** `id`'s path segment, as a client library percent-encodes it. */
const segment = (id: string) => encodeURIComponent(id);

forEachLog(
  "ids with unusual characters are posted and asked for as their own keys; every answer conforms to /openapi.json",
  { settings: { CLOCK_IDLE_MS: "500" } },
  async ({ config }) => {
    let engine = await startEngine(config, silentLogger);
    try {
      const doc: Json = await (await fetch(`${engine.url}/openapi.json`)).json();
      /** The answer of `method` `path` (a template of the document) checked against the document; its body. */
      const conforms = async (template: string, response: Response, method = "get"): Promise<Json> => {
        const contentType = response.headers.get("content-type") ?? "";
        const text = await response.text();
        const documented = doc.paths[template]?.[method]?.responses?.[String(response.status)];
        assert.ok(documented, `${method} ${template} answered ${response.status}, which it does not document: ${text}`);
        const media = documented.content?.[contentType.split(";")[0]];
        assert.ok(media, `${method} ${template} ${response.status}: content type ${contentType} is not documented`);
        const body = JSON.parse(text);
        assert.deepEqual(schemaProblems(body, media.schema as JsonSchema, doc), [], `${method} ${template}: ${text}`);
        return body;
      };
      const get = (path: string) => fetch(`${engine.url}${path}`);

      const t0 = Date.now() - 5 * MIN;
      const at = (k: number) => new Date(t0 + k * 1000).toISOString();
      // Each user views the product of its own id, as many times as its place in the list plus one: the counts tell
      // one key from another (`Bob` from `bob`, NFC from NFD) whatever the answers' other fields say.
      const batch: Json[] = [];
      ODD_IDS.forEach((id, i) => {
        for (let k = 0; k <= i; k++) {
          batch.push({
            type: "product_viewed",
            userId: id,
            occurredAt: at(k),
            properties: { productId: id, price: 10, category: "odd" },
          });
        }
      });
      batch.push({ type: "product_viewed", userId: "a/b", occurredAt: at(30), properties: { productId: "100%" } });
      batch.push({
        type: "product_added_to_cart",
        userId: "a/b",
        occurredAt: at(31),
        properties: { productId: "a/b", price: 10, quantity: 1 },
      });
      batch.push({
        type: "order_completed",
        userId: "a/b",
        occurredAt: at(32),
        properties: { orderId: "o/1", items: [{ productId: "a/b", quantity: 1, price: 10 }], total: 10 },
      });
      batch.push({ type: "inventory_updated", occurredAt: at(33), properties: { productId: "a+b", stock: 0 } });
      // One user of each other kind of event, so that the answers hold a checkout awaiting its order, a search, a
      // session with a client id and a removal too.
      const shopper = "with space";
      batch.push(
        { type: "page_viewed", userId: shopper, sessionId: "s 1", occurredAt: at(40), properties: { url: "/?q=%" } },
        {
          type: "search_performed",
          userId: shopper,
          occurredAt: at(41),
          properties: { query: "a/b?", resultsCount: 2 },
        },
        {
          type: "product_added_to_cart",
          userId: shopper,
          occurredAt: at(42),
          properties: { productId: "#hash", price: 2.5, quantity: 3, category: "odd", brand: "b" },
        },
        {
          type: "product_removed_from_cart",
          userId: shopper,
          occurredAt: at(43),
          properties: { productId: "#hash", quantity: 1 },
        },
        { type: "checkout_started", userId: shopper, occurredAt: at(44), properties: { cartValue: 5 } },
      );
      const posted = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch),
      });
      const accepted = await conforms("/v1/events", posted, "post");
      assert.equal(posted.status, 202, JSON.stringify(accepted));
      assert.equal(accepted.accepted, batch.length);

      // A 129-character user id is refused, naming the field.
      const tooLong = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "page_viewed", userId: "x".repeat(129), properties: { url: "/" } }),
      });
      assert.equal(tooLong.status, 400);
      const refused = await conforms("/v1/events", tooLong, "post");
      assert.deepEqual(refused.errors.map((e: Json) => e.path), ["userId"]);

      for (const [i, id] of ODD_IDS.entries()) {
        const views = i + 1 + (id === "a/b" ? 1 : 0);
        const user = await eventually(
          `user ${JSON.stringify(id)}`,
          async () => {
            const response = await get(`/v1/users/${segment(id)}`);
            if (response.status !== 200) return void await response.body?.cancel();
            const body = await conforms("/v1/users/{id}", response);
            return body.productViews === views ? body : undefined;
          },
          30_000,
          200,
        );
        assert.equal(user.userId, id);
        const product = await eventually(
          `product ${JSON.stringify(id)}`,
          async () => {
            const response = await get(`/v1/products/${segment(id)}`);
            if (response.status !== 200) return void await response.body?.cancel();
            const body = await conforms("/v1/products/{id}", response);
            return body.views === (id === "100%" ? i + 2 : i + 1) ? body : undefined;
          },
          30_000,
          200,
        );
        assert.equal(product.productId, id);
        const related = await conforms("/v1/products/{id}/related", await get(`/v1/products/${segment(id)}/related`));
        assert.equal(related.productId, id);
        const recommendations = await conforms(
          "/v1/users/{id}/recommendations",
          await get(`/v1/users/${segment(id)}/recommendations`),
        );
        assert.equal(recommendations.userId, id);
      }
      const withCheckout = await eventually("the shopper's checkout", async () => {
        const body = await conforms("/v1/users/{id}", await get(`/v1/users/${segment(shopper)}`));
        return body.checkout ? body : undefined;
      });
      assert.equal(withCheckout.checkout.cartValue, 5);
      assert.equal(withCheckout.cart.items["#hash"].quantity, 2);
      assert.equal(withCheckout.searches, 1);
      // An id never posted is a 404 problem, under every route about an id.
      for (const path of ["/v1/users/{id}", "/v1/products/{id}", "/v1/users/{id}/recommendations"]) {
        const response = await get(path.replace("{id}", segment("BOB")));
        assert.equal(response.status, 404);
        assert.equal((await conforms(path, response)).type, "urn:actor-engine:problem:not_found");
      }

      const stocked = await eventually("the stock of a+b", async () => {
        const body = await (await get(`/v1/products/${segment("a+b")}`)).json();
        return body.stock === 0 ? body : undefined;
      });
      assert.equal(stocked.productId, "a+b");
      const alerts = await eventually("the alerts", async () => {
        const body = await conforms("/v1/alerts", await get("/v1/alerts"));
        return body.items.length > 0 ? body : undefined;
      });
      assert.ok(alerts.items.some((a: Json) => a.subject.id === "a+b"), JSON.stringify(alerts));
      await conforms("/v1/alerts", await get(`/v1/alerts?since=${encodeURIComponent(at(0).replace("Z", "+00:00"))}`));

      const windows = ["1m", "5m", "15m", "1h", "24h", "7d", "30d"];
      const paths = [
        "/v1/analytics/realtime",
        ...windows.map((w) => `/v1/analytics/funnel?window=${w}`),
        ...["views", "purchases", "revenue", "trending"].flatMap((by) => [
          ...[...windows, "all"].map((w) => `/v1/analytics/top-products?by=${by}&window=${w}&limit=100`),
          ...windows.map((w) => `/v1/analytics/top-categories?by=${by}&window=${w}&limit=100`),
        ]),
        "/v1/alerts?type=out_of_stock&limit=1",
        `/v1/products/${segment("a/b")}/related?limit=100`,
      ];
      for (const path of paths) {
        const response = await get(path);
        assert.equal(response.status, 200, path);
        await conforms(path.split("?")[0].replace(/^\/v1\/products\/[^/]+/, "/v1/products/{id}"), response);
      }
      await conforms("/healthz", await get("/healthz"));
      await conforms("/readyz", await get("/readyz"));

      // Bad parameters are 400 problems naming them; wrong methods 405 with Allow.
      const bad = await get("/v1/analytics/top-products?by=likes&limit=0");
      assert.equal(bad.status, 400);
      const problem = await conforms("/v1/analytics/top-products", bad);
      assert.deepEqual(problem.errors.map((e: Json) => e.path).sort(), ["by", "limit"]);
      const wrongMethod = await fetch(`${engine.url}/v1/users/${segment("a/b")}`, { method: "PUT" });
      assert.equal(wrongMethod.status, 405);
      assert.equal(wrongMethod.headers.get("allow"), "GET, HEAD");
      assert.equal(wrongMethod.headers.get("content-type"), "application/problem+json");
      await wrongMethod.body?.cancel();
      const head = await fetch(`${engine.url}/v1/users/${segment("a/b")}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-type"), "application/json");
      assert.equal(await head.text(), "");

      // After a restart, the keys not yet back in memory are answered from their checkpoints: the same shape.
      const before = new Map<string, Json>();
      for (const id of ODD_IDS) before.set(id, await (await get(`/v1/users/${segment(id)}`)).json());
      await engine.stop();
      engine = await startEngine(config, silentLogger);
      for (const id of ODD_IDS) {
        const { source: _s, asOf: _a, instance: _i, ...state } = await conforms(
          "/v1/users/{id}",
          await get(`/v1/users/${segment(id)}`),
        );
        const { source: _bs, asOf: _ba, instance: _bi, ...expected } = before.get(id)!;
        assert.deepEqual(state, expected, id);
        const product = await conforms("/v1/products/{id}", await get(`/v1/products/${segment(id)}`));
        assert.equal(product.productId, id);
      }
    } finally {
      await engine.stop();
    }
  },
);
