/**
 * Fuzzing the real handler: thousands of random and mutated requests (wrong types, huge strings,
 * deep nesting, invalid UTF-8, truncated JSON, random content types and paths) get a 4xx, or a
 * 202 when the body happens to be valid — never a 5xx, never a throw — and the log holds exactly
 * what was acknowledged. Reproduce a failure with FUZZ_SEED=<seed printed in the message>.
 */
import assert from "node:assert/strict";
import { EVENT_TYPES, type EventType } from "../../actors/events.ts";
import { BASE, FIXTURE_NOW, httpFixture, postEvents } from "./http_fixture.ts";
import { prng } from "../helpers/prng.ts";

const CASES = 4_000;
/** The production default body limit, so that deep nesting reaches the JSON parser. */
const LIMITS = { maxEvents: 1_000, maxBodyBytes: 1024 * 1024 };
const DEEP = 100_000;
const HUGE = 200_000;
const ALLOWED = new Set([400, 404, 405, 413, 415]);

class Gen {
  constructor(readonly random: () => number) {}
  int(max: number): number {
    return Math.floor(this.random() * max);
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  string(maxLength = 12): string {
    const alphabet = ["a", "Z", "0", " ", "-", "é", "漢", "😀", "\u0000", '"', "\\", "\n", "\ud800", "%"];
    return Array.from({ length: this.int(maxLength + 1) }, () => this.pick(alphabet)).join("");
  }
  number(): number {
    return this.pick([0, 1, -1, 0.5, 1e308, -1e308, 2 ** 53, 1e-9, this.random() * 1000, -this.int(100)]);
  }
  json(depth = 3): unknown {
    const kind = this.int(depth > 0 ? 8 : 5);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.number();
      case 3:
        return this.string();
      case 4:
        return this.pick(["", "page_viewed", "2026-11-22T12:00:00Z", "USD", "3b241101-e2bb-4255-8caf-4136c566a962"]);
      case 5:
        return Array.from({ length: this.int(4) }, () => this.json(depth - 1));
      default:
        return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.string(6), this.json(depth - 1)]));
    }
  }
}

/** A random valid event of `type`. */
function validEvent(g: Gen, type: EventType): Record<string, unknown> {
  const productId = `sku-${g.int(50)}`;
  const properties: Record<EventType, () => Record<string, unknown>> = {
    page_viewed: () => ({ url: `/p/${g.int(100)}`, ...(g.chance(0.5) ? { loadTime: g.random() * 5 } : {}) }),
    product_viewed: () => ({ productId, ...(g.chance(0.5) ? { price: g.int(500) } : {}) }),
    search_performed: () => ({ query: g.string(20), ...(g.chance(0.5) ? { resultsCount: g.int(100) } : {}) }),
    product_added_to_cart: () => ({
      productId,
      price: g.int(500),
      ...(g.chance(0.5) ? { quantity: 1 + g.int(5) } : {}),
    }),
    product_removed_from_cart: () => ({ productId }),
    checkout_started: () => (g.chance(0.5) ? { cartValue: g.int(900) } : {}),
    order_completed: () => ({
      orderId: `o-${g.int(1e6)}`,
      items: Array.from({ length: 1 + g.int(3) }, () => ({ productId, quantity: 1 + g.int(3), price: g.int(99) })),
      total: g.int(1000),
      ...(g.chance(0.5) ? { currency: "EUR" } : {}),
    }),
    inventory_updated: () => ({ productId, stock: g.int(100) }),
  };
  return {
    type,
    ...(type === "inventory_updated" ? {} : { userId: `user-${g.int(100)}` }),
    ...(g.chance(0.3) ? { occurredAt: new Date(FIXTURE_NOW - g.int(1e9)).toISOString() } : {}),
    ...(g.chance(0.2) ? { eventId: crypto.randomUUID() } : {}),
    properties: properties[type](),
  };
}

/** Replaces, deletes or adds one field somewhere in `value`, with a hostile value. */
function mutate(g: Gen, value: unknown): unknown {
  if (value === null || typeof value !== "object") return g.chance(0.5) ? g.json() : value;
  const copy: Record<string, unknown> = Array.isArray(value) ? [...value] as never : { ...value };
  const keys = Object.keys(copy);
  const key = keys.length > 0 && g.chance(0.8) ? g.pick(keys) : g.string(5);
  const action = g.int(6);
  if (action === 0) delete copy[key];
  else if (action === 1) copy[key] = mutate(g, copy[key]);
  else if (action === 2) copy[key] = "x".repeat(g.chance(0.1) ? HUGE : 300);
  else if (action === 3) copy[key] = g.pick([[], {}, null, -1, 0, 1.5, "", true, [[[[]]]], { type: "page_viewed" }]);
  else copy[key] = g.json();
  return copy;
}

function bytes(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

/** One random request body, with a short label for failure messages. */
function randomBody(g: Gen): { label: string; body: Uint8Array<ArrayBuffer> } {
  const event = () => validEvent(g, g.pick(EVENT_TYPES));
  switch (g.int(14)) {
    case 0:
      return { label: "valid event", body: bytes(JSON.stringify(event())) };
    case 1:
      return { label: "valid batch", body: bytes(JSON.stringify(Array.from({ length: 1 + g.int(20) }, event))) };
    case 2:
      return { label: "mutated event", body: bytes(JSON.stringify(mutate(g, mutate(g, event())))) };
    case 3: {
      const batch = Array.from({ length: 1 + g.int(10) }, () => (g.chance(0.3) ? mutate(g, event()) : event()));
      return { label: "mutated batch", body: bytes(JSON.stringify(batch)) };
    }
    case 4:
      return { label: "random JSON", body: bytes(JSON.stringify(g.json(4)) ?? "") };
    case 5: {
      const text = JSON.stringify(event());
      return { label: "truncated JSON", body: bytes(text.slice(0, g.int(text.length))) };
    }
    case 6: {
      const raw = bytes(JSON.stringify(event()));
      for (let i = 0; i < 1 + g.int(4); i++) raw[g.int(raw.length)] = g.int(256);
      return { label: "flipped bytes (invalid UTF-8 likely)", body: raw };
    }
    case 7: {
      const open = g.pick(["[", '{"a":', '{"type":"page_viewed","userId":"u","properties":']);
      const close = open === "[" ? "]" : "}";
      const depth = g.chance(0.5) ? DEEP : g.int(5000);
      const body = g.pick(["tail", "none"]) === "tail"
        ? open.repeat(depth) + "1" + close.repeat(depth)
        : open.repeat(depth);
      return { label: `nesting ${depth} deep`, body: bytes(body) };
    }
    case 8:
      return { label: "huge string", body: bytes(JSON.stringify({ ...event(), userId: "u".repeat(HUGE) })) };
    case 9:
      return { label: "over the byte limit", body: bytes(" ".repeat(LIMITS.maxBodyBytes + 1 + g.int(1000))) };
    case 10: {
      const lines = Array.from({ length: 1 + g.int(10) }, () => JSON.stringify(g.chance(0.7) ? event() : g.json()));
      return { label: "NDJSON-ish lines", body: bytes(lines.join(g.pick(["\n", "\r\n", "\n\n", " "]))) };
    }
    case 11:
      return { label: "random bytes", body: Uint8Array.from({ length: g.int(200) }, () => g.int(256)) };
    case 12:
      return {
        label: "too many events",
        body: bytes(JSON.stringify(Array.from({ length: LIMITS.maxEvents + 1 }, () => ({})))),
      };
    default:
      return {
        label: "special values",
        body: bytes(g.pick(["", "null", "0", '""', "[]", "{}", "\ufeff{}", "NaN", "[1,]"])),
      };
  }
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/vnd.api+json",
  "APPLICATION/JSON",
  "text/plain",
  "text/json",
  "application/octet-stream",
  "multipart/form-data; boundary=----x",
  "application/x-www-form-urlencoded",
  "",
  ";;;",
  "application/json;;;charset=\u00ff",
];

/** A request: usually POST /v1/events, sometimes a random method and path. */
function randomRequest(g: Gen): { label: string; request: Request } {
  const { label, body } = randomBody(g);
  const type = g.chance(0.85)
    ? g.pick(CONTENT_TYPES)
    : g.chance(0.5)
    ? null
    : g.string(20).replace(/[^\x20-\x7e]/g, "");
  if (g.chance(0.9)) {
    return { label: `${label}, content-type ${JSON.stringify(type)}`, request: postEvents(body, type) };
  }
  const path = g.pick(["/v1/users/", "/v1/products/", "/v1/events/", "/healthz/", "/", "/v1/"]) +
    g.pick([
      "",
      "alice",
      "%",
      "%E0%A4%A",
      "%C3%28",
      "%2F..%2F",
      encodeURIComponent(g.string(8).toWellFormed()),
      "a/b",
      "x".repeat(2000),
    ]);
  const method = g.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
  const request = new Request(`${BASE}${path}`, {
    method,
    headers: type === null ? {} : { "content-type": type },
    body: method === "GET" || method === "HEAD" ? null : body,
  });
  return { label: `${method} ${path.slice(0, 60)} with ${label}`, request };
}

Deno.test(`the HTTP handler answers ${CASES} random requests with 4xx or 202, never 5xx, and stores exactly what it acknowledges`, async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 32));
  const g = new Gen(prng(seed));
  const { handle, log, topics } = await httpFixture(undefined, LIMITS);
  const stored = () => log.all(topics.events).length + log.all(topics.productEvents).length;
  const statuses = new Map<number, number>();
  for (let i = 0; i < CASES; i++) {
    const { label, request } = randomRequest(g);
    const where = `case ${i} (${label}); reproduce with FUZZ_SEED=${seed}`;
    const before = stored();
    let response: Response;
    try {
      response = await handle(request);
    } catch (error) {
      assert.fail(`the handler threw on ${where}: ${error}`);
    }
    const text = await response.text();
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    if (response.status === 202) {
      const accepted = JSON.parse(text);
      assert.equal(stored() - before, accepted.accepted, `202 must match the log on ${where}`);
      continue;
    }
    assert.ok(
      ALLOWED.has(response.status) || response.status === 200,
      `status ${response.status} on ${where}: ${text.slice(0, 300)}`,
    );
    assert.equal(stored(), before, `a rejected request stored records on ${where}`);
    if (response.status >= 400) {
      assert.equal(response.headers.get("content-type"), "application/problem+json", where);
      assert.equal(JSON.parse(text).status, response.status, where);
    }
  }
  // The generator must reach both sides: acceptances and each kind of rejection.
  for (const status of [202, 400, 413, 415]) {
    assert.ok(statuses.get(status), `no ${status} in ${[...statuses]} (FUZZ_SEED=${seed})`);
  }
});
