/**
 * GET /openapi.json: the document generated from the route table and the zod schemas is a
 * well-shaped OpenAPI 3.1 document that describes every route, every event type, every status and
 * every query parameter a route validates.
 */
import assert from "node:assert/strict";
import { EVENT_TYPES, MAX_USER_ID_LENGTH } from "../../actors/events.ts";
import { silentLogger } from "../../engine/logger.ts";
import { FUNNEL_WINDOWS } from "../../http/query_routes.ts";
import { startingRoutes } from "../../http/routes.ts";
import { createHandler } from "../../http/server.ts";
import { BASE, FIXTURE_LIMITS, httpFixture, pageView, postEvents } from "./http_fixture.ts";

/** Parsed JSON, navigated freely by the assertions. */
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const REF_PREFIX = "#/components/schemas/";

async function fetchDocument(): Promise<Json> {
  const { handle } = await httpFixture();
  const response = await handle(new Request(`${BASE}/openapi.json`));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  return await response.json();
}

/** Every value of `key` anywhere in `value`. */
function collect(value: unknown, key: string, found: unknown[] = []): unknown[] {
  if (Array.isArray(value)) value.forEach((v) => collect(v, key, found));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === key) found.push(v);
      collect(v, key, found);
    }
  }
  return found;
}

function component(doc: Json, ref: string): Json {
  assert.ok(ref.startsWith(REF_PREFIX), ref);
  const schema = doc.components.schemas[ref.slice(REF_PREFIX.length)];
  assert.ok(schema, `unresolved ${ref}`);
  return schema;
}

Deno.test("GET /openapi.json serves an OpenAPI 3.1.0 document with info, paths and components", async () => {
  const doc = await fetchDocument();
  assert.equal(doc.openapi, "3.1.0");
  assert.equal(typeof doc.info.title, "string");
  assert.equal(typeof doc.info.version, "string");
  assert.equal(typeof doc.paths, "object");
  assert.equal(typeof doc.components.schemas, "object");
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    assert.match(path, /^\/[\w/{}.-]*$/, "templated paths, no ':' parameters");
    for (const [method, operation] of Object.entries(item as Json)) {
      assert.ok(["get", "post", "put", "delete", "patch"].includes(method), method);
      assert.equal(typeof operation.summary, "string");
      assert.ok(Object.keys(operation.responses).length > 0, `${method} ${path} has responses`);
      for (const name of path.matchAll(/\{(\w+)\}/g)) {
        const param = operation.parameters.find((p: Json) => p.name === name[1]);
        assert.deepEqual([param?.in, param?.required], ["path", true], `${path} documents {${name[1]}}`);
      }
    }
  }
  const operationIds = collect(doc.paths, "operationId");
  assert.equal(new Set(operationIds).size, operationIds.length, "operationIds are unique");
});

Deno.test("the OpenAPI document describes every route of the table, and the required ones", async () => {
  const { routes } = await httpFixture();
  const doc = await fetchDocument();
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    assert.ok(route.doc, `${route.method} ${path} carries a doc`);
    assert.ok(doc.paths[path]?.[route.method.toLowerCase()], `${route.method} ${path} is documented`);
  }
  for (
    const [path, method] of [
      ["/v1/events", "post"],
      ["/v1/users/{id}", "get"],
      ["/v1/products/{id}", "get"],
      ["/v1/users/{id}/recommendations", "get"],
      ["/v1/products/{id}/related", "get"],
      ["/v1/analytics/realtime", "get"],
      ["/v1/analytics/funnel", "get"],
      ["/v1/analytics/top-products", "get"],
      ["/v1/alerts", "get"],
      ["/healthz", "get"],
      ["/readyz", "get"],
      ["/metrics", "get"],
      ["/openapi.json", "get"],
    ]
  ) {
    assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
  }
});

Deno.test("every query parameter a route validates is documented from its schema: in, required, schema, description", async () => {
  const { routes } = await httpFixture();
  const doc = await fetchDocument();
  const withQuery = routes.filter((route) => route.query);
  assert.ok(withQuery.length >= 4, "related, funnel, top-products and alerts declare their query parameters");
  for (const route of withQuery) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const documented = (doc.paths[path][route.method.toLowerCase()].parameters ?? [])
      .filter((p: Json) => p.in === "query");
    const declared = Object.keys(route.query!.shape);
    assert.deepEqual(documented.map((p: Json) => p.name).sort(), [...declared].sort(), `${path} query parameters`);
    for (const param of documented) {
      const field = route.query!.shape[param.name];
      assert.equal(param.required, !field.safeParse(undefined).success, `${path} ${param.name} required`);
      assert.equal(typeof param.description, "string", `${path} ${param.name} has a description`);
      assert.ok(param.schema.type || param.schema.enum, `${path} ${param.name} has a typed schema`);
      assert.equal(param.schema.description, undefined, "the description is the parameter's, not repeated");
    }
  }
  const funnel = doc.paths["/v1/analytics/funnel"].get.parameters.find((p: Json) => p.name === "window");
  assert.deepEqual([funnel.in, funnel.required, funnel.schema.default], ["query", false, "15m"]);
  assert.deepEqual(funnel.schema.enum, Object.keys(FUNNEL_WINDOWS));
  const limit = doc.paths["/v1/alerts"].get.parameters.find((p: Json) => p.name === "limit");
  assert.deepEqual([limit.schema.type, limit.schema.minimum, limit.schema.maximum, limit.schema.default], [
    "integer",
    1,
    500,
    50,
  ]);
  const since = doc.paths["/v1/alerts"].get.parameters.find((p: Json) => p.name === "since");
  assert.equal(since.schema.format, "date-time");
  const related = doc.paths["/v1/products/{id}/related"].get.parameters.map((p: Json) => [p.name, p.in]);
  assert.deepEqual(related, [["id", "path"], ["limit", "query"]]);
});

Deno.test("a query parameter that any route rejects with a 400 is documented for that route", async () => {
  const { routes, handle } = await httpFixture();
  const doc = await fetchDocument();
  // Every declared name anywhere, plus names a handler might read on its own.
  const candidates = new Set(["window", "by", "limit", "type", "since", "until", "from", "to", "offset", "cursor"]);
  for (const route of routes) for (const name of Object.keys(route.query?.shape ?? {})) candidates.add(name);
  const invalid = ["", "-1", "0", "not valid", "x".repeat(300)];
  let rejected = 0;
  for (const route of routes.filter((r) => r.method === "GET")) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    const documented = new Set(
      (doc.paths[path].get.parameters ?? []).filter((p: Json) => p.in === "query").map((p: Json) => p.name),
    );
    for (const name of candidates) {
      for (const value of invalid) {
        const url = `${BASE}${route.path.replace(/:(\w+)/g, "alice")}?${name}=${encodeURIComponent(value)}`;
        const response = await handle(new Request(url));
        const body = await response.json().catch(() => null);
        const named = response.status === 400 && body?.errors?.some((e: Json) => e.path === name);
        if (!named) continue;
        rejected++;
        assert.ok(documented.has(name), `GET ${path} validates \`${name}\` but does not document it`);
      }
    }
  }
  assert.ok(rejected > 0, "the probe reached the validation of some parameters");
});

Deno.test("GET /readyz and /metrics document their answers", async () => {
  const doc = await fetchDocument();
  const ready = doc.paths["/readyz"].get.responses;
  assert.equal(component(doc, ready["200"].content["application/json"].schema.$ref).type, "object");
  assert.equal(ready["503"].content["application/json"].schema.$ref, `${REF_PREFIX}Readiness`);
  assert.ok(ready["503"].headers["Retry-After"]);
  assert.deepEqual(component(doc, `${REF_PREFIX}Readiness`).properties.status.enum, ["ready", "not ready"]);
  assert.equal(doc.paths["/metrics"].get.responses["200"].content["text/plain"].schema.type, "string");
});

Deno.test("every $ref resolves, and no JSON Schema dialect leftovers ($schema, $id, $defs) remain", async () => {
  const doc = await fetchDocument();
  for (const ref of collect(doc, "$ref")) component(doc, String(ref));
  for (const key of ["$schema", "$id", "$defs"]) assert.deepEqual(collect(doc, key), [], key);
});

Deno.test("POST /v1/events documents the single event, the array and NDJSON request bodies", async () => {
  const doc = await fetchDocument();
  const content = doc.paths["/v1/events"].post.requestBody.content;
  assert.equal(doc.paths["/v1/events"].post.requestBody.required, true);
  const options = content["application/json"].schema.anyOf.map((s: Json) => s.$ref);
  assert.deepEqual(options, [`${REF_PREFIX}Event`, `${REF_PREFIX}EventBatch`]);
  const batch = component(doc, `${REF_PREFIX}EventBatch`);
  assert.equal(batch.type, "array");
  assert.equal(batch.minItems, 1);
  assert.equal(batch.maxItems, FIXTURE_LIMITS.maxEvents);
  assert.equal(batch.items.$ref, `${REF_PREFIX}Event`);
  const ndjson = content["application/x-ndjson"];
  assert.equal(ndjson.schema.type, "string");
  assert.equal(ndjson["x-itemSchema"].$ref, `${REF_PREFIX}Event`);
});

Deno.test("the Event schema has every event type, with its discriminator, defaults and required fields", async () => {
  const doc = await fetchDocument();
  const event = component(doc, `${REF_PREFIX}Event`);
  assert.equal(event.discriminator.propertyName, "type");
  const byType = new Map<string, Json>();
  for (const option of event.oneOf) {
    const schema = component(doc, option.$ref);
    byType.set(schema.properties.type.const, schema);
    assert.equal(event.discriminator.mapping[schema.properties.type.const], option.$ref);
  }
  assert.deepEqual([...byType.keys()].sort(), [...EVENT_TYPES].sort());
  for (const [type, schema] of byType) {
    assert.equal(schema.type, "object");
    assert.ok(schema.required.includes("type"), type);
    assert.equal(schema.required.includes("userId"), type !== "inventory_updated", `${type} userId required`);
    assert.equal(schema.required.includes("eventId"), false, "eventId is optional");
    assert.equal(schema.properties.userId.maxLength, MAX_USER_ID_LENGTH);
    assert.equal(schema.properties.eventId.format, "uuid");
    assert.equal(schema.properties.occurredAt.format, "date-time");
  }
  const cart = byType.get("product_added_to_cart")!.properties.properties;
  assert.equal(cart.properties.quantity.default, 1);
  assert.equal(cart.properties.quantity.minimum, 1);
  assert.deepEqual(cart.required.sort(), ["price", "productId"]);
  const order = byType.get("order_completed")!.properties.properties;
  assert.equal(order.properties.currency.default, "USD");
  assert.equal(order.properties.items.minItems, 1);
  assert.equal(byType.get("inventory_updated")!.properties.properties.properties.stock.minimum, 0);
  assert.equal(byType.get("checkout_started")!.required.includes("properties"), false);
});

Deno.test("POST /v1/events documents 202, 400, 413, 415, 429 and 503 (with Retry-After) responses", async () => {
  const doc = await fetchDocument();
  const responses = doc.paths["/v1/events"].post.responses;
  assert.equal(responses["202"].content["application/json"].schema.$ref, `${REF_PREFIX}Accepted`);
  const accepted = component(doc, `${REF_PREFIX}Accepted`);
  assert.deepEqual(accepted.required.sort(), ["accepted", "eventIds"]);
  for (const status of ["400", "413", "415", "429", "503"]) {
    assert.equal(responses[status].content["application/problem+json"].schema.$ref, `${REF_PREFIX}Problem`, status);
  }
  assert.ok(responses["503"].headers["Retry-After"]);
  assert.ok(responses["429"].headers["Retry-After"]);
  // The limit a 429 is about is named, with the fixture's value.
  assert.match(responses["429"].description, /33554432 bytes \(MAX_INGEST_PENDING_BYTES\)/);
  const problem = component(doc, `${REF_PREFIX}Problem`);
  assert.deepEqual(problem.required.sort(), ["status", "title", "type"]);
  assert.equal(problem.properties.errors.items.$ref, `${REF_PREFIX}FieldProblem`);
});

Deno.test("GET /v1/users/{id}, /v1/products/{id} and /healthz document their answers", async () => {
  const doc = await fetchDocument();
  const documented = {
    "/v1/users/{id}": ["User", ["userId", "session", "funnelStage", "cart", "orders", "alerts", "source"]],
    "/v1/products/{id}": ["Product", [
      "productId",
      "views",
      "uniqueViewers",
      "conversion",
      "stock",
      "related",
      "source",
    ]],
  } as const;
  for (const [path, [id, fields]] of Object.entries(documented)) {
    const responses = doc.paths[path].get.responses;
    assert.equal(responses["200"].content["application/json"].schema.$ref, `${REF_PREFIX}${id}`);
    const answer = component(doc, `${REF_PREFIX}${id}`);
    for (const field of fields) assert.ok(answer.required.includes(field), `${id}.${field} is required`);
    assert.ok(answer.properties.asOf && answer.properties.instance, `${id} says where it was read from`);
    for (const internal of ["seenEventHashes", "viewers", "dedupe", "trend", "coViewed", "revenueMillis"]) {
      assert.equal(answer.properties[internal], undefined, `${id}.${internal} is internal`);
    }
    for (const status of ["400", "404", "503"]) assert.ok(responses[status], `${path} ${status}`);
  }
  assert.equal(component(doc, `${REF_PREFIX}User`).properties.session.anyOf[0].$ref, `${REF_PREFIX}Session`);
  const health = doc.paths["/healthz"].get.responses["200"].content["application/json"].schema;
  assert.equal(component(doc, health.$ref).properties.status.const, "ok");
});

Deno.test("POST /v1/events documents the checks its JSON Schema cannot carry, and the bounds it can", async () => {
  const doc = await fetchDocument();
  const post = doc.paths["/v1/events"].post;
  // zod refinements are left out of the generated schemas: the operation says what they check.
  assert.match(post.description, /1970-01-01T00:00:00Z and 9999-12-31T23:59:59\.999Z/);
  assert.match(post.description, /U\+0000 or an unpaired UTF-16 surrogate/);
  assert.match(post.description, /price × quantity .* at most 1000000000/);
  // Plain bounds are in the schemas themselves.
  const maxima = collect(doc.components.schemas, "maximum");
  for (const bound of [1_000_000_000, 1_000_000, 3_600]) assert.ok(maxima.includes(bound), `maximum ${bound}`);
});

Deno.test("GET /v1/alerts, /v1/users/{id}/recommendations and /v1/products/{id}/related document their answers' fields", async () => {
  const doc = await fetchDocument();
  const answer = (path: string) => {
    const schema = doc.paths[path].get.responses["200"].content["application/json"].schema;
    return schema.$ref ? component(doc, schema.$ref) : schema;
  };
  const alerts = answer("/v1/alerts");
  assert.deepEqual(alerts.required, ["items"]);
  const alert = component(doc, alerts.properties.items.items.$ref);
  assert.deepEqual(alert.required, ["alertId", "type", "severity", "subject", "occurredAt", "details"]);
  assert.ok(alert.properties.type.enum.includes("cart_abandoned"));
  const recommendations = answer("/v1/users/{id}/recommendations");
  assert.deepEqual(recommendations.required, ["userId", "items"]);
  for (const field of ["basedOn", "recommendationId", "generatedAt"]) {
    assert.ok(recommendations.properties[field], field);
  }
  assert.deepEqual(recommendations.properties.items.items.required, ["productId", "score"]);
  const related = answer("/v1/products/{id}/related");
  assert.deepEqual(related.required, ["productId", "items", "source"]);
});

Deno.test("every path's `id` is documented as the routes take it: percent-encoded, non-empty, a 400 when malformed", async () => {
  const doc = await fetchDocument();
  const withId = Object.entries(doc.paths).filter(([path]) => path.includes("{id}"));
  assert.ok(withId.length >= 4, "users, products, recommendations and related products");
  for (const [path, operations] of withId) {
    const get = (operations as Json).get;
    const id = get.parameters.find((p: Json) => p.in === "path" && p.name === "id");
    assert.equal(id.schema.minLength, 1, `${path}: an empty id matches no route`);
    assert.match(id.description ?? "", /percent-encoded/, path);
    assert.match(get.responses["400"].description, /percent-encoded/, `${path}: a malformed id is a 400`);
  }
});

/** The handler of the engine while it starts, with the fixture's /readyz and /metrics. */
async function startingHandler(): Promise<(request: Request) => Promise<Response>> {
  const { routes } = await httpFixture();
  const operations = routes.filter((route) => route.path === "/readyz" || route.path === "/metrics");
  return createHandler(startingRoutes(operations), silentLogger);
}

Deno.test("every status a documented operation answers while the engine starts is documented for it", async () => {
  const doc = await fetchDocument();
  const handle = await startingHandler();
  for (const [path, operations] of Object.entries(doc.paths as Json)) {
    for (const [method, operation] of Object.entries(operations as Json)) {
      const request = new Request(`${BASE}${path.replace(/\{\w+\}/g, "alice")}`, {
        method: method.toUpperCase(),
        ...(method === "post" ? { headers: { "content-type": "application/json" }, body: "[]" } : {}),
      });
      const response = await handle(request);
      await response.body?.cancel();
      // GET /openapi.json answered an undocumented 503 until the engine was ready.
      assert.ok(
        operation.responses[String(response.status)],
        `${method.toUpperCase()} ${path} answers ${response.status} while the engine starts, which it does not document`,
      );
    }
  }
});

Deno.test("every problem type the server answers is named in the document", async () => {
  const { handle } = await httpFixture();
  const doc = await fetchDocument();
  const starting = await startingHandler();
  const problems = [
    await handle(new Request(`${BASE}/v1/nowhere`)), // no route: about:blank
    await handle(new Request(`${BASE}/v1/users/alice`, { method: "DELETE" })), // 405
    await handle(postEvents(JSON.stringify({ type: "page_viewed" }))),
    await handle(new Request(`${BASE}/v1/users/bob`)),
    await handle(postEvents(JSON.stringify(Array.from({ length: FIXTURE_LIMITS.maxEvents + 1 }, () => pageView("a"))))),
    await handle(postEvents("{}", "text/plain")),
    await handle(new Request(`${BASE}/v1/alerts`)), // the fixture's database fails
    await starting(new Request(`${BASE}/v1/users/alice`)),
  ];
  const types = new Set<string>();
  for (const response of problems) {
    assert.equal(response.headers.get("content-type"), "application/problem+json", String(response.status));
    types.add((await response.json()).type);
  }
  assert.equal(types.size, 7, [...types].join(", "));
  const described = component(doc, `${REF_PREFIX}Problem`).properties.type.description as string;
  // A client could not tell a starting engine from a database outage (both 503), nor an unknown id from an unknown
  // path (both 404), without the types: the document named none of them.
  for (const type of types) assert.ok(described.includes(`\`${type}\``), `${type} is not named in Problem.type`);
});

Deno.test("the rankings' 200 answers name every `by` they take", async () => {
  const doc = await fetchDocument();
  for (const path of ["/v1/analytics/top-products", "/v1/analytics/top-categories"]) {
    const get = doc.paths[path].get;
    const by = get.parameters.find((p: Json) => p.name === "by").schema.enum as string[];
    // top-categories took `trending` but its answer said "by views, purchases or revenue".
    for (const name of by) assert.match(get.responses["200"].description, new RegExp(name), `${path}: ${name}`);
  }
});
