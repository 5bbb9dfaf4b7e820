/**
 * POST /v1/events through the real handler and route table, on the in-memory log: statuses,
 * bodies and headers of every outcome, and that nothing is reported accepted that is not stored.
 */
import assert from "node:assert/strict";
import { LogUnavailableError, MAX_LISTED_PROBLEMS } from "../../engine/errors.ts";
import { Metrics } from "../../engine/metrics.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { topicNames } from "../../engine/config.ts";
import { buildRoutes } from "../../http/routes.ts";
import { FORWARDED_HEADER, type StateReader } from "../../engine/state_reader.ts";
import { createLogger, silentLogger } from "../../engine/logger.ts";
import { createHandler } from "../../http/server.ts";
import {
  BASE,
  FIXTURE_FORWARD_SECRET,
  FIXTURE_LIMITS,
  FIXTURE_NOW,
  httpFixture,
  pageView,
  postEvents,
} from "./http_fixture.ts";

const PROBLEM_KEYS = new Set(["type", "title", "status", "detail", "errors"]);

/** Asserts an RFC 9457 response with `status` and returns its body. */
async function problem(response: Response, status: number): Promise<Record<string, unknown>> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const body = JSON.parse(text);
  assert.equal(body.status, status);
  assert.equal(typeof body.title, "string");
  for (const key of Object.keys(body)) assert.ok(PROBLEM_KEYS.has(key), `unexpected member ${key}`);
  assert.doesNotMatch(text, /\.ts:\d+|\bat [\w.<>]+ \(|stack/i, "no stack traces in problems");
  return body;
}

function errorPaths(body: Record<string, unknown>): string[] {
  return (body.errors as { path: string }[]).map((e) => e.path);
}

Deno.test("POST /v1/events answers 202 {accepted, eventIds} for one event, after it is in the log", async () => {
  const { handle, log, topics } = await httpFixture();
  const response = await handle(postEvents(JSON.stringify(pageView("alice"))));
  assert.equal(response.status, 202);
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.deepEqual(Object.keys(body).sort(), ["accepted", "eventIds"]);
  assert.equal(body.accepted, 1);
  const stored = log.all(topics.events).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(stored.map((e) => e.eventId), body.eventIds);
  assert.equal(stored[0].userId, "alice");
});

Deno.test("POST /v1/events accepts a JSON array and answers the ids in input order", async () => {
  const { handle, log, topics } = await httpFixture();
  const eventId = "3b241101-e2bb-4255-8caf-4136c566a962";
  const batch = [pageView("a"), { ...pageView("b"), eventId }, pageView("a", "/2")];
  const response = await handle(postEvents(JSON.stringify(batch)));
  assert.equal(response.status, 202);
  const body = await response.json();
  assert.equal(body.accepted, 3);
  assert.equal(body.eventIds[1], eventId);
  const stored = log.all(topics.events).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(stored.map((e) => e.eventId).sort(), [...body.eventIds].sort());
});

Deno.test("POST /v1/events accepts NDJSON under each of its media types, skipping blank lines and CRs", async () => {
  for (const type of ["application/x-ndjson", "application/ndjson", "application/jsonl; charset=utf-8"]) {
    const { handle, log, topics } = await httpFixture();
    const text = [pageView("a"), pageView("b"), pageView("c")].map((e) => JSON.stringify(e)).join("\r\n") + "\n\n";
    const response = await handle(postEvents(text, type));
    assert.equal(response.status, 202, type);
    const body = await response.json();
    assert.equal(body.accepted, 3);
    assert.equal(log.all(topics.events).length, 3);
  }
});

Deno.test("POST /v1/events answers 400 for malformed JSON, invalid UTF-8 and empty bodies", async () => {
  const { handle, log, topics } = await httpFixture();
  const malformed = await problem(await handle(postEvents('{"type": "page_viewed",')), 400);
  assert.deepEqual(errorPaths(malformed), ["(body)"]);
  const utf8 = await problem(await handle(postEvents(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), 400);
  assert.match(String(utf8.detail), /UTF-8/);
  for (const empty of ["", "[]", "\n\n"]) {
    const type = empty.startsWith("\n") ? "application/x-ndjson" : "application/json";
    await problem(await handle(postEvents(empty, type)), 400);
  }
  const lines = await problem(await handle(postEvents('{"a":1}\n{oops\n{"b":2}\n[', "application/x-ndjson")), 400);
  assert.deepEqual(errorPaths(lines), ["line 2", "line 4"]);
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("POST /v1/events refuses query parameters, naming them, and stores nothing (it takes none)", async () => {
  const { handle, log, topics } = await httpFixture();
  const request = postEvents(JSON.stringify(pageView("alice")));
  const withQuery = new Request(`${BASE}/v1/events?dryRun=true&Window=1y`, request);
  const body = await problem(await handle(withQuery), 400);
  assert.deepEqual(errorPaths(body), ["query", "query"]);
  assert.match(String(body.detail), /unknown parameter\(s\) 'dryRun', 'Window'/);
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test('POST /v1/events refuses user and product ids a URL path cannot name ("." and "..")', async () => {
  const { handle, log, topics } = await httpFixture();
  const batch = [
    pageView(".."),
    { type: "product_viewed", userId: "u", properties: { productId: "." } },
    { type: "inventory_updated", properties: { productId: "..", stock: 1 } },
    {
      type: "order_completed",
      userId: "u",
      properties: {
        orderId: "..",
        total: 2,
        items: [{ productId: "p", quantity: 1, price: 1 }, { productId: ".", quantity: 1, price: 1 }],
      },
    },
    pageView("..."),
  ];
  const body = await problem(await handle(postEvents(JSON.stringify(batch))), 400);
  assert.deepEqual(errorPaths(body).sort(), [
    "0.userId",
    "1.properties.productId",
    "2.properties.productId",
    "3.properties.items.1.productId",
  ]);
  assert.match(JSON.stringify(body.errors), /a URL path cannot name it/);
  assert.equal(log.all(topics.events).length, 0);
  // Such a path does not reach the actor: URL parsing resolves the segment away.
  assert.equal(new URL(`${BASE}/v1/users/%2E%2E`).pathname, "/v1/");
});

Deno.test("POST /v1/events answers 413, not a retryable 503, for an event too large to be one log record", async () => {
  const { handle, log, topics } = await httpFixture(undefined, { maxEvents: 50, maxBodyBytes: 4 * 1024 * 1024 });
  // 1,000 lines of about 1 KB of UTF-8 each (3 bytes per character): a 1 MB order.
  const wide = "\u4e00".repeat(256);
  const items = Array.from({ length: 1_000 }, (_, i) => ({
    productId: `${wide.slice(0, 250)}${i}`,
    quantity: 1,
    price: 1,
    category: wide.slice(0, 90),
  }));
  const order = { type: "order_completed", userId: "u", properties: { orderId: "o1", items, total: 1_000 } };
  const body = await problem(await handle(postEvents(JSON.stringify([pageView("u"), order]))), 413);
  assert.match(String(body.detail), /event 1 would be a log record of \d+ bytes, above the 1000000/);
  assert.equal(log.all(topics.events).length, 0, "nothing of the batch was stored");
  // Half of it is one record like any other.
  const half = { ...order, properties: { ...order.properties, items: items.slice(0, 500), total: 500 } };
  assert.equal((await handle(postEvents(JSON.stringify(half)))).status, 202);
});

Deno.test("POST /v1/events answers 400 listing every problem, and stores nothing of the batch", async () => {
  const { handle, log, topics } = await httpFixture();
  const batch = [
    pageView("ok"),
    { type: "product_added_to_cart", userId: "u", properties: { productId: "p", quantity: 0, price: -1 } },
    { type: "teleported", userId: "u" },
    { type: "inventory_updated", properties: { productId: "p", stock: -1 } },
  ];
  const body = await problem(await handle(postEvents(JSON.stringify(batch))), 400);
  assert.deepEqual(errorPaths(body).sort(), [
    "1.properties.price",
    "1.properties.quantity",
    "2.type",
    "3.properties.stock",
  ]);
  assert.match(String(body.detail), /3 of 4 events are invalid; none was accepted/);
  assert.equal(body.type, "urn:actor-engine:problem:validation_failed");
  assert.equal(log.all(topics.events).length + log.all(topics.productEvents).length, 0);
});

Deno.test("POST /v1/events lists at most MAX_LISTED_PROBLEMS problems: a small body cannot make a huge answer", async () => {
  const { handle, log, topics } = await httpFixture();
  // Items of `{}` cost 3 bytes each and make 3 problems each (~250 bytes of answer): within the fixture's 64 KiB
  // body, 18 orders of 999 such items made an answer of some 50,000 problems and 5 MB, a 1 MiB body one of 100 MB.
  const order = (i: number) => ({
    type: "order_completed",
    userId: `u${i}`,
    properties: { orderId: `o${i}`, total: 1, items: Array.from({ length: 999 }, () => ({})) },
  });
  const batch = [pageView("ok"), ...Array.from({ length: 18 }, (_, i) => order(i))];
  const text = JSON.stringify(batch);
  assert.ok(text.length <= FIXTURE_LIMITS.maxBodyBytes);
  const response = await handle(postEvents(text));
  const answer = await response.text();
  const body = await problem(new Response(answer, response), 400);
  assert.equal((body.errors as unknown[]).length, MAX_LISTED_PROBLEMS);
  assert.ok(answer.length < 200 * MAX_LISTED_PROBLEMS, `${answer.length} bytes`);
  // The first problems, in order, and the answer says the list is cut short.
  assert.equal(errorPaths(body)[0], "1.properties.items.0.productId");
  assert.match(
    String(body.detail),
    new RegExp(`^at least 1 of 19 events are invalid; none was accepted; only the first ${MAX_LISTED_PROBLEMS} `),
  );
  assert.match(String(body.detail), /problems are listed, and events 2–18 were not checked$/);
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("POST /v1/events names the key a missing field was sent under in another case", async () => {
  const { handle } = await httpFixture();
  const event = { type: "product_viewed", userid: "u", properties: { ProductId: "p", price: 1 } };
  const body = await problem(await handle(postEvents(JSON.stringify(event))), 400);
  const messages = Object.fromEntries((body.errors as { path: string; message: string }[]).map((e) => [e.path, e]));
  assert.match(messages["userId"].message, /the object has "userid": names are case-sensitive/);
  assert.match(messages["properties.productId"].message, /the object has "ProductId": names are case-sensitive/);
  // A field simply missing gets no hint.
  const missing = await problem(
    await handle(postEvents(JSON.stringify({ type: "product_viewed", properties: {} }))),
    400,
  );
  for (const e of missing.errors as { message: string }[]) assert.doesNotMatch(e.message, /case-sensitive/);
});

Deno.test("POST /v1/events answers 413 when the body exceeds the byte limit, declared or streamed", async () => {
  const { handle, log, topics } = await httpFixture();
  const big = JSON.stringify(pageView("a", "x".repeat(FIXTURE_LIMITS.maxBodyBytes)));
  const declared = postEvents(big);
  assert.ok(Number(declared.headers.get("content-length") ?? big.length) > FIXTURE_LIMITS.maxBodyBytes);
  await problem(await handle(declared), 413);
  // A chunked body of unknown length is cut off as soon as it passes the limit.
  const chunk = new TextEncoder().encode(" ".repeat(1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  const streamed = new Request(`${BASE}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: stream,
  });
  await problem(await handle(streamed), 413);
  assert.ok(sent <= FIXTURE_LIMITS.maxBodyBytes + 4 * chunk.byteLength, `read ${sent} bytes of an endless body`);
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("POST /v1/events answers 413 when the request holds more events than allowed", async () => {
  const { handle, log, topics } = await httpFixture();
  const tooMany = Array.from({ length: FIXTURE_LIMITS.maxEvents + 1 }, (_, i) => pageView(`u${i}`, "/"));
  const body = await problem(await handle(postEvents(JSON.stringify(tooMany))), 413);
  assert.match(String(body.detail), new RegExp(`${FIXTURE_LIMITS.maxEvents + 1} events exceed the limit`));
  const ndjson = tooMany.map((e) => JSON.stringify(e)).join("\n");
  await problem(await handle(postEvents(ndjson, "application/x-ndjson")), 413);
  assert.equal(log.all(topics.events).length, 0);
  const exactly = await handle(postEvents(JSON.stringify(tooMany.slice(1))));
  assert.equal(exactly.status, 202);
  await exactly.body?.cancel();
});

Deno.test("POST /v1/events answers 415 for a wrong or missing content type", async () => {
  const { handle } = await httpFixture();
  const json = JSON.stringify(pageView("a"));
  for (const type of ["text/plain", "application/xml", "multipart/form-data; boundary=x", "json", null]) {
    const body = await problem(await handle(postEvents(json, type)), 415);
    assert.match(String(body.detail), /application\/json/);
  }
  const accepted = await handle(postEvents(json, "application/vnd.shop+json; charset=utf-8"));
  assert.equal(accepted.status, 202);
  await accepted.body?.cancel();
  // Text in another charset, and a compressed body, were read as UTF-8: misread, or a 400 about UTF-8.
  for (const type of ["application/json; charset=latin1", 'application/json; charset="ISO-8859-1"']) {
    const body = await problem(await handle(postEvents(json, type)), 415);
    assert.match(String(body.detail), /charset '(latin1|iso-8859-1)' is not accepted; send UTF-8/);
  }
  const gzipped = postEvents(json);
  gzipped.headers.set("content-encoding", "gzip");
  assert.match(String((await problem(await handle(gzipped), 415)).detail), /content encoding 'gzip'/);
});

Deno.test("POST /v1/events stores an eventId in lower case: the same UUID in upper case is the same event", async () => {
  const { handle, log, topics } = await httpFixture();
  const id = "3B241101-E2BB-4255-8CAF-4136C566A962";
  const response = await handle(postEvents(JSON.stringify({ ...pageView("a"), eventId: id })));
  assert.equal(response.status, 202);
  assert.deepEqual((await response.json()).eventIds, [id.toLowerCase()]);
  const stored = log.all(topics.events).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(stored.map((e) => e.eventId), [id.toLowerCase()]);
});

Deno.test("POST /v1/events answers 503 with Retry-After when the log fails, and reports nothing accepted", async () => {
  const { handle, log, topics } = await httpFixture();
  for (const failure of [new LogUnavailableError("broker gone"), new Error("socket hang up")]) {
    log.failAppends = failure;
    const response = await handle(postEvents(JSON.stringify([pageView("a"), pageView("b")])));
    assert.ok(Number(response.headers.get("retry-after")) > 0);
    const body = await problem(response, 503);
    assert.equal("accepted" in body || "eventIds" in body, false);
    assert.doesNotMatch(JSON.stringify(body), /socket hang up/, "no internal details");
  }
  assert.equal(log.all(topics.events).length, 0);
  // Recovery needs nothing but the log coming back.
  log.failAppends = null;
  const response = await handle(postEvents(JSON.stringify(pageView("a"))));
  assert.equal(response.status, 202);
  await response.body?.cancel();
  assert.equal(log.all(topics.events).length, 1);
});

Deno.test("unknown routes answer 404, wrong methods 405 with Allow, both as problems", async () => {
  const { handle } = await httpFixture();
  await problem(await handle(new Request(`${BASE}/v1/nothing`)), 404);
  const wrong = await handle(new Request(`${BASE}/v1/events`, { method: "GET" }));
  assert.equal(wrong.headers.get("allow"), "POST");
  await problem(wrong, 405);
  const put = await handle(new Request(`${BASE}/v1/users/alice`, { method: "PUT", body: "{}" }));
  assert.equal(put.headers.get("allow"), "GET, HEAD");
  await problem(put, 405);
});

Deno.test("the compatibility inputs, not built yet, answer 404 as problems and store nothing (README: HTTP API)", async () => {
  const { handle, log, topics } = await httpFixture();
  const posts = [
    ["/v1/track", { type: "track", event: "Product Viewed", userId: "u", properties: { product_id: "p" } }],
    ["/v1/batch", { batch: [{ type: "page", userId: "u", name: "Home" }] }],
    ["/mp/collect", { client_id: "c", events: [{ name: "view_item", params: { items: [{ item_id: "p" }] } }] }],
    ["/api/events/product-view", { user_id: "u", product_id: "p" }],
    ["/api/events/purchase", { user_id: "u", order_id: "o", product_ids: ["p"], total_amount: 1 }],
    ["/api/v1/events/purchase", { orderId: "o", productId: "p", customerId: "u", amount: 1, timestamp: 0 }],
    ["/orders", { orderId: "o", customerId: "u", items: [], totalAmount: 0, orderTimestamp: 0 }],
  ] as const;
  for (const [path, body] of posts) {
    const response = await handle(
      new Request(`${BASE}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
    assert.match(String((await problem(response, 404)).detail), new RegExp(path.replaceAll("/", "\\/")), path);
  }
  await problem(await handle(new Request(`${BASE}/api/analytics/real-time`)), 404);
  assert.equal(log.all(topics.events).length + log.all(topics.productEvents).length, 0, "nothing stored");
});

Deno.test("a GET route answers HEAD as it answers GET (RFC 9110), and HEAD is no method of POST /v1/events", async () => {
  const { handle } = await httpFixture();
  for (const path of ["/v1/users/alice", "/healthz", "/openapi.json"]) {
    const get = await handle(new Request(`${BASE}${path}`));
    const head = await handle(new Request(`${BASE}${path}`, { method: "HEAD" }));
    assert.equal(head.status, 200, path);
    assert.equal(head.headers.get("content-type"), get.headers.get("content-type"), path);
    await Promise.all([get.body?.cancel(), head.body?.cancel()]);
  }
  const unknown = await handle(new Request(`${BASE}/v1/users/nobody`, { method: "HEAD" }));
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
  const events = await handle(new Request(`${BASE}/v1/events`, { method: "HEAD" }));
  assert.equal(events.headers.get("allow"), "POST");
  await problem(events, 405);
});

Deno.test("a 405 on a GET route lists HEAD in Allow, since it answers HEAD; OPTIONS is refused naming both", async () => {
  const { handle } = await httpFixture();
  for (
    const path of ["/v1/users/alice", "/v1/users/alice/recommendations", "/v1/analytics/realtime", "/openapi.json"]
  ) {
    for (const method of ["OPTIONS", "PUT", "DELETE"]) {
      const response = await handle(new Request(`${BASE}${path}`, { method }));
      assert.equal(response.headers.get("allow"), "GET, HEAD", `${method} ${path}`);
      await problem(response, 405);
    }
  }
});

Deno.test("GET /v1/users/{id} decodes the id, answers 404 for an unknown one and 400 for bad percent-encoding or NUL", async () => {
  const { handle } = await httpFixture();
  const found = await handle(new Request(`${BASE}/v1/users/%61lice`));
  assert.equal(found.status, 200);
  const body = await found.json();
  assert.deepEqual([body.userId, body.source], ["alice", "memory"]);
  await problem(await handle(new Request(`${BASE}/v1/users/bob`)), 404);
  for (const bad of ["%E0%A4%A", "%", "%zz", "%C3%28", "bob%00"]) {
    const body = await problem(await handle(new Request(`${BASE}/v1/users/${bad}`)), 400);
    assert.deepEqual(errorPaths(body), ["id"]);
    await problem(await handle(new Request(`${BASE}/v1/products/${bad}`)), 400);
  }
  // State routes take no query parameters: a misspelt one is refused, not ignored.
  for (const path of ["/v1/users/alice?fields=cart", "/v1/products/p1?asOf=now"]) {
    const body = await problem(await handle(new Request(`${BASE}${path}`)), 400);
    assert.deepEqual(errorPaths(body), ["query"]);
  }
});

Deno.test("an unexpected failure answers a bare 500 problem without internal details", async () => {
  const broken: StateReader = { read: () => Promise.reject(new Error("secret connection string in here")) };
  const { handle } = await httpFixture(broken);
  const response = await handle(new Request(`${BASE}/v1/users/alice`));
  const body = await problem(response, 500);
  assert.deepEqual(Object.keys(body).sort(), ["status", "title", "type"]);
});

Deno.test("GET /healthz answers 200 {status: ok}", async () => {
  const { handle } = await httpFixture();
  const response = await handle(new Request(`${BASE}/healthz`));
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: "ok" });
});

Deno.test("related products read their key through the owner, as the state routes do", async () => {
  const reads: { kind: string; key: string; forwarded?: boolean }[] = [];
  const reader: StateReader = {
    read: (kind, key, options) => {
      reads.push({ kind, key, forwarded: options?.forwarded });
      return Promise.resolve({ state: { related: [] }, source: "memory" });
    },
  };
  const { handle } = await httpFixture(reader);
  for (const header of [undefined, FIXTURE_FORWARD_SECRET, "1"]) {
    const headers = header === undefined ? undefined : { [FORWARDED_HEADER]: header };
    const response = await handle(new Request(`${BASE}/v1/products/p1/related`, { headers }));
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }
  // It used to read locally only (memory, else the checkpoint), never asking the key's owner. A header without the
  // group's secret is a client's: it was taken as another instance's, and the key read unrouted.
  assert.deepEqual(reads, [
    { kind: "product", key: "p1", forwarded: false },
    { kind: "product", key: "p1", forwarded: true },
    { kind: "product", key: "p1", forwarded: false },
  ]);
});

Deno.test('the method label of request metrics is one of the standard methods or "other": clients cannot add series', async () => {
  const seen: string[] = [];
  const handle = createHandler([], silentLogger, {
    emit: (event) => void (event.type === "http_request" && seen.push(event.method)),
  });
  for (const method of ["GET", "POST", "M0", "M1", "PROPFIND"]) {
    await (await handle(new Request(`${BASE}/nowhere`, { method }))).body?.cancel();
  }
  // Any token is a method: "M0" … "M49" made fifty series of each request metric.
  assert.deepEqual(seen, ["GET", "POST", "other", "other", "other"]);
});

Deno.test("the route label of request metrics is the route's pattern, or (unmatched): paths cannot add series", async () => {
  const { routes } = await httpFixture();
  const seen: string[] = [];
  const handle = createHandler(routes, silentLogger, {
    emit: (event) => void (event.type === "http_request" && seen.push(event.route)),
  });
  for (const path of ["/v1/users/alice", "/v1/users/bob", "/nowhere/1", "/nowhere/2"]) {
    await (await handle(new Request(`${BASE}${path}`))).body?.cancel();
  }
  assert.deepEqual(seen, ["/v1/users/:id", "/v1/users/:id", "(unmatched)", "(unmatched)"]);
});

Deno.test("request metrics tell a query another instance forwarded from a client's, so sums over instances count it once", async () => {
  const { routes } = await httpFixture();
  const metrics = new Metrics({ defaultMetrics: false });
  const handle = createHandler(routes, silentLogger, metrics, FIXTURE_FORWARD_SECRET);
  await (await handle(new Request(`${BASE}/v1/users/alice`))).body?.cancel();
  await (await handle(
    new Request(`${BASE}/v1/users/alice`, { headers: { [FORWARDED_HEADER]: FIXTURE_FORWARD_SECRET } }),
  ))
    .body
    ?.cancel();
  const text = await metrics.registry.metrics();
  // Both were counted alike: the receiving instance counted its client's request, and the owner the forwarded one.
  const series = (source: string, n = 1) =>
    new RegExp(
      `engine_http_requests_total\\{route="/v1/users/:id",method="GET",status="\\d+",source="${source}"\\} ${n}`,
    );
  assert.match(text, series("client"));
  assert.match(text, series("instance"));
  // A client's copy of the header, without the group's secret, is a client's request.
  await (await handle(new Request(`${BASE}/v1/users/alice`, { headers: { [FORWARDED_HEADER]: "1" } }))).body
    ?.cancel();
  assert.match(await metrics.registry.metrics(), series("client", 2));
  assert.match(
    text,
    /engine_http_request_duration_seconds_count\{route="\/v1\/users\/:id",method="GET",source="instance"\} 1/,
  );
});

Deno.test("a log that is down is logged as a warning (expected, retryable); an unexpected failure as an error", async () => {
  const { routes, log } = await httpFixture();
  const lines: { level: string; status: number }[] = [];
  const handle = createHandler(routes, createLogger("warn", (line) => lines.push(JSON.parse(line))));
  log.failAppends = new LogUnavailableError("broker gone");
  await (await handle(postEvents(JSON.stringify(pageView("a"))))).body?.cancel();
  assert.deepEqual(lines.map((l) => [l.level, l.status]), [["warn", 503]]);
  lines.length = 0;
  log.failAppends = null;
  const broken = createHandler(
    [{ method: "GET", path: "/boom", handler: () => Promise.reject(new Error("bug")) }],
    createLogger("warn", (line) => lines.push(JSON.parse(line))),
  );
  await (await broken(new Request(`${BASE}/boom`))).body?.cancel();
  assert.deepEqual(lines.map((l) => [l.level, l.status]), [["error", 500]]);
});

Deno.test("a rejected request counts every event it held as rejected in the ingestion metric", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const log = new MemoryLog(() => FIXTURE_NOW);
  const routes = buildRoutes({
    producer: log.producer(),
    topics: topicNames({ TOPIC_PREFIX: "" }),
    reader: { read: () => Promise.resolve(null) },
    ingest: { rules: { maxFutureMs: 300_000 }, maxPendingBytes: 1 << 20, ...FIXTURE_LIMITS },
    now: () => FIXTURE_NOW,
    instrumentation: metrics,
  });
  const handle = createHandler(routes, silentLogger, metrics);
  const batch = [pageView("a"), { type: "page_viewed", userId: "b", properties: {} }, pageView("c")];
  assert.equal((await handle(postEvents(JSON.stringify(batch)))).status, 400);
  assert.match(
    (await metrics.render()).body,
    /engine_events_ingested_total\{type="\(batch\)",outcome="rejected"\} 3\b/,
  );
});
