/**
 * GET /openapi.json: the document generated from the route table and the zod schemas is a
 * well-shaped OpenAPI 3.1 document that describes every route, every event type and every status.
 */
import assert from "node:assert/strict";
import { EVENT_TYPES, MAX_USER_ID_LENGTH } from "../../actors/events.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { topicNames } from "../../engine/config.ts";
import { buildRoutes } from "../../http/routes.ts";
import { BASE, FIXTURE_LIMITS, httpFixture } from "./http_fixture.ts";

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
  const doc = await fetchDocument();
  const routes = buildRoutes({
    producer: new MemoryLog().producer(),
    topics: topicNames({ TOPIC_PREFIX: "" }),
    reader: { read: () => Promise.resolve(null) },
    ingest: { rules: { maxFutureMs: 1 }, maxEvents: 1, maxBodyBytes: 1 },
    now: Date.now,
  });
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, "{$1}");
    assert.ok(doc.paths[path]?.[route.method.toLowerCase()], `${route.method} ${path} is documented`);
  }
  for (
    const [path, method] of [["/v1/events", "post"], ["/v1/users/{id}", "get"], ["/v1/products/{id}", "get"], [
      "/healthz",
      "get",
    ], ["/openapi.json", "get"]]
  ) {
    assert.ok(doc.paths[path]?.[method], `${method} ${path}`);
  }
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

Deno.test("POST /v1/events documents 202, 400, 413, 415 and 503 (with Retry-After) responses", async () => {
  const doc = await fetchDocument();
  const responses = doc.paths["/v1/events"].post.responses;
  assert.equal(responses["202"].content["application/json"].schema.$ref, `${REF_PREFIX}Accepted`);
  const accepted = component(doc, `${REF_PREFIX}Accepted`);
  assert.deepEqual(accepted.required.sort(), ["accepted", "eventIds"]);
  for (const status of ["400", "413", "415", "503"]) {
    assert.equal(responses[status].content["application/problem+json"].schema.$ref, `${REF_PREFIX}Problem`, status);
  }
  assert.ok(responses["503"].headers["Retry-After"]);
  const problem = component(doc, `${REF_PREFIX}Problem`);
  assert.deepEqual(problem.required.sort(), ["status", "title", "type"]);
  assert.equal(problem.properties.errors.items.$ref, `${REF_PREFIX}FieldProblem`);
});

Deno.test("GET /v1/users/{id}, /v1/products/{id} and /healthz document their answers", async () => {
  const doc = await fetchDocument();
  for (const path of ["/v1/users/{id}", "/v1/products/{id}"]) {
    const responses = doc.paths[path].get.responses;
    assert.equal(responses["200"].content["application/json"].schema.$ref, `${REF_PREFIX}ActorState`);
    for (const status of ["400", "404", "503"]) assert.ok(responses[status], `${path} ${status}`);
  }
  const health = doc.paths["/healthz"].get.responses["200"].content["application/json"].schema;
  assert.equal(component(doc, health.$ref).properties.status.const, "ok");
});
