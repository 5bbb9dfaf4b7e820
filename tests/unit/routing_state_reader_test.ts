/** The state reader's routing rules, with a fake runtime, store, registry and fetch. */
import assert from "node:assert/strict";
import type { CheckpointStore } from "../../engine/checkpoint.ts";
import { NotFoundError } from "../../engine/errors.ts";
import { createLogger, type LogSink } from "../../engine/logger.ts";
import type { PartitionOwner } from "../../engine/instance_registry.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import type { ActorRuntime } from "../../engine/runtime.ts";
import {
  createStateReader,
  FORWARDED_HEADER,
  INSTANCE_HEADER,
  routedKinds,
  type StateRouting,
} from "../../engine/state_reader.ts";
import { errorResponse, problemResponse } from "../../http/problem.ts";
import { stateRoute } from "../../http/state_route.ts";
import { BASE, FIXTURE_FORWARD_SECRET, httpFixture } from "./http_fixture.ts";

const TOPIC = "events";
const UPDATED = new Date("2026-11-01T00:00:00Z");
/** The group's forward secret, sent as the header's value. */
const SECRET = "group-secret";

/**
 * A reader for a user `u1`, in memory with the state `live` or not, whose partition `ownsIt` or not, owned by `owner`
 * in PostgreSQL (by default as the runtime has it: this instance if it owns the partition, else another).
 */
function setup(
  options: {
    ownsIt?: boolean;
    live?: unknown;
    owner?: PartitionOwner | null;
    ownerFails?: boolean;
    answer?: () => Promise<Response>;
  },
  log?: LogSink,
) {
  const calls: Request[] = [];
  const partition = partitionForKey("u1", 6);
  const runtime = {
    lookup: (_kind: string, key: string) =>
      options.live !== undefined && key === "u1" ? { state: options.live, partition } : undefined,
    owned: () => options.ownsIt ? [`${TOPIC}:${partition}`] : [],
  } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const routing: StateRouting = {
    registry: {
      instanceId: "self",
      owner: () =>
        options.ownerFails ? Promise.reject(new Error("database down")) : Promise.resolve(
          options.owner !== undefined
            ? options.owner
            : options.ownsIt
            ? { instanceId: "self", httpUrl: "http://self" }
            : { instanceId: "other", httpUrl: "http://o" },
        ),
    },
    forwardSecret: SECRET,
    kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
    fetch: (input, init) => {
      calls.push(new Request(input, init));
      return options.answer?.() ?? Promise.resolve(Response.json({ userId: "u1", n: 2, source: "memory" }));
    },
    ...(log ? { logger: createLogger("warn", log) } : {}),
  };
  return { reader: createStateReader(runtime, store, routing), calls };
}

const fromCheckpoint = {
  state: { userId: "u1", n: 1 },
  source: "checkpoint",
  asOf: UPDATED.toISOString(),
  instance: "self",
};

Deno.test("routing: a key owned elsewhere is answered by its owner, marked as forwarded", async () => {
  const { reader, calls } = setup({});
  const found = await reader.read("user", "u1", { forwarded: false });
  assert.deepEqual(found, { state: { userId: "u1", n: 2 }, source: "memory", instance: "other" });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "http://o/v1/users/u1");
  assert.equal(calls[0].headers.get(FORWARDED_HEADER), SECRET);
});

Deno.test("routing: a forwarded request, a local read, or an owned partition is never forwarded", async () => {
  for (
    const [options, read] of [
      [{}, { forwarded: true }],
      [{}, undefined],
      [{ ownsIt: true }, { forwarded: false }],
    ] as const
  ) {
    const { reader, calls } = setup(options);
    assert.deepEqual(await reader.read("user", "u1", read), fromCheckpoint);
    assert.equal(calls.length, 0);
  }
});

Deno.test("routing: a key in memory here whose partition another instance has claimed since is not answered from this memory", async () => {
  // This instance stalled (a pause, Kafka out of reach) while the group gave the partition to another, which claimed it
  // and handled more: until this one hears of it, its memory is stale, yet it still holds the partition's worker.
  const other = { instanceId: "other", httpUrl: "http://o" };
  const { reader, calls } = setup({ ownsIt: true, live: { userId: "u1", n: 0 }, owner: other });
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), {
    state: { userId: "u1", n: 2 },
    source: "memory",
    instance: "other",
  });
  assert.equal(calls.length, 1);
  // The new owner out of reach: the checkpoint (which it writes now) answers, marked, rather than the stale memory.
  const unreachable = setup({ ownsIt: true, live: { userId: "u1", n: 0 }, owner: { ...other, httpUrl: null } });
  assert.deepEqual(await unreachable.reader.read("user", "u1", { forwarded: false }), fromCheckpoint);
  // A query forwarded here by an instance whose owner cache still named this one: the checkpoint answers, marked, not
  // the stale memory (it used to), and it is not forwarded again.
  const forwardedHere = setup({ ownsIt: true, live: { userId: "u1", n: 0 }, owner: other });
  assert.deepEqual(await forwardedHere.reader.read("user", "u1", { forwarded: true }), fromCheckpoint);
  assert.equal(forwardedHere.calls.length, 0);
  // Still the owner (asked by a client or forwarded here), or PostgreSQL unreadable, or a local read: the memory
  // answers, with no forward.
  const live = { state: { userId: "u1", n: 0 }, source: "memory", instance: "self" };
  for (
    const [options, read] of [
      [{}, { forwarded: false }],
      [{}, { forwarded: true }],
      [{ ownerFails: true }, { forwarded: false }],
      [{ ownerFails: true }, { forwarded: true }],
      [{ owner: other }, undefined],
    ] as const
  ) {
    const { reader, calls } = setup({ ownsIt: true, live: { userId: "u1", n: 0 }, ...options });
    assert.deepEqual(await reader.read("user", "u1", read), live, JSON.stringify(options));
    assert.equal(calls.length, 0);
  }
});

Deno.test("routing: a key in memory is answered at once while PostgreSQL stalls, as before the ownership check", async () => {
  const live = { userId: "u1", n: 0 };
  const partition = partitionForKey("u1", 6);
  let lookups = 0;
  const stalled = Promise.withResolvers<PartitionOwner>();
  const reader = createStateReader(
    { lookup: () => ({ state: live, partition }), owned: () => [`${TOPIC}:${partition}`] } as unknown as ActorRuntime,
    {} as CheckpointStore,
    {
      registry: {
        instanceId: "self",
        // The first lookup answers; every later one waits for the test (a database that stopped answering).
        owner: () =>
          lookups++ === 0 ? Promise.resolve({ instanceId: "self", httpUrl: "http://self" }) : stalled.promise,
      },
      forwardSecret: SECRET,
      kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
      ownerCacheMs: 0,
      fetch: () => Promise.reject(new Error("no forward expected")),
    },
  );
  const expected = { state: live, source: "memory", instance: "self" };
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), expected);
  // Answered before PostgreSQL does: by the next turn of the event loop, with the lookups still unanswered (a
  // threshold in milliseconds measured the machine's load instead).
  let answered = false;
  const answers = Promise.all([
    reader.read("user", "u1", { forwarded: false }),
    reader.read("user", "u1", { forwarded: false }),
  ]).then((all) => (answered = true, all));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(answered, "memory answers waited for the stalled owner lookup");
  assert.ok(lookups > 1, "the owner was looked up again (and is still unanswered)");
  stalled.resolve({ instanceId: "self", httpUrl: "http://self" });
  assert.deepEqual(await answers, [expected, expected]);
});

Deno.test("routing: an owner found longer ago than it is trusted is looked up again before a memory answer", async () => {
  // This instance found itself the owner, then stalled (SIGSTOP, a paused VM) past the session timeout while another
  // claimed the partition: on waking, the owner found before the stall is too old to vouch for its memory.
  const live = { userId: "u1", n: 0 };
  const partition = partitionForKey("u1", 6);
  let lookups = 0;
  const calls: Request[] = [];
  const reader = createStateReader(
    { lookup: () => ({ state: live, partition }), owned: () => [`${TOPIC}:${partition}`] } as unknown as ActorRuntime,
    {} as CheckpointStore,
    {
      registry: {
        instanceId: "self",
        owner: () =>
          Promise.resolve(
            lookups++ === 0
              ? { instanceId: "self", httpUrl: "http://self" }
              : { instanceId: "other", httpUrl: "http://o" },
          ),
      },
      forwardSecret: SECRET,
      kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
      ownerCacheMs: 0,
      ownerTrustedMs: 0,
      fetch: (input, init) => {
        calls.push(new Request(input, init));
        return Promise.resolve(Response.json({ userId: "u1", n: 2, source: "memory" }));
      },
    },
  );
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), {
    state: live,
    source: "memory",
    instance: "self",
  });
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), {
    state: { userId: "u1", n: 2 },
    source: "memory",
    instance: "other",
  });
  assert.equal(calls.length, 1);
});

Deno.test("routing: the global actor's memory, its partition claimed elsewhere since, is not a client's nor a forwarded query's answer", async () => {
  // Analytics are routed whole (`route`); one the owner did not answer is read here, from the checkpoint, not from the
  // memory of a partition another instance has claimed (it used to be, as `source: memory`).
  const partition = partitionForKey("global", 1);
  const reader = createStateReader(
    {
      lookup: () => ({ state: { n: 0 }, partition }),
      owned: () => [`analytics:${partition}`],
    } as unknown as ActorRuntime,
    { read: () => Promise.resolve({ state: { n: 1 }, updatedAt: UPDATED }) } as unknown as CheckpointStore,
    {
      registry: { instanceId: "self", owner: () => Promise.resolve({ instanceId: "other", httpUrl: "http://o" }) },
      forwardSecret: SECRET,
      kinds: { global: { topic: "analytics", partitions: 1 } },
      fetch: () => Promise.reject(new TypeError("connection refused")),
    },
  );
  const request = new Request("http://self/v1/analytics/realtime");
  assert.equal(await reader.route("global", "global", request), undefined);
  // Nor is a query another instance forwarded here, its owner cache naming this one still (it used to be).
  for (const forwarded of [false, true]) {
    assert.deepEqual(await reader.read("global", "global", { forwarded }), {
      state: { n: 1 },
      source: "checkpoint",
      asOf: UPDATED.toISOString(),
      instance: "self",
    }, `forwarded: ${forwarded}`);
  }
  // A local read still reads the memory.
  assert.deepEqual(await reader.read("global", "global"), { state: { n: 0 }, source: "memory", instance: "self" });
});

Deno.test("routing: an unreachable, stale, failing or absent owner falls back to the checkpoint", async () => {
  const cases = [
    { owner: null },
    { owner: { instanceId: "other", httpUrl: null } },
    { owner: { instanceId: "self", httpUrl: "http://self" } },
    { answer: () => Promise.reject(new TypeError("connection refused")) },
    { answer: () => Promise.resolve(new Response("boom", { status: 503 })) },
    { answer: () => Promise.resolve(new Response("not json", { status: 200 })) },
  ];
  for (const options of cases) {
    const { reader } = setup(options);
    assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint, JSON.stringify(options));
  }
});

Deno.test("routing: the owner's 404 is the answer", async () => {
  const { reader } = setup({ answer: () => Promise.resolve(errorResponse(new NotFoundError("no user with id 'u1'"))) });
  assert.equal(await reader.read("user", "u1", { forwarded: false }), null);
});

Deno.test("routing: a 404 that is not the engine's not-found, or a 200 without a state source, falls back to the checkpoint", async () => {
  // What a wrong ADVERTISED_URL reaches: another server's 404 page, a route the owner does not have, any JSON.
  const answers = [
    () => new Response("<h1>Not Found</h1>", { status: 404, headers: { "content-type": "text/html" } }),
    () => new Response("{}", { status: 404 }),
    () => problemResponse({ title: "Not found", status: 404, detail: "no route for /v1/users/u1" }),
    () => Response.json({ userId: "u1", n: 2 }),
  ];
  for (const answer of answers) {
    const lines: Record<string, unknown>[] = [];
    const { reader } = setup({ answer: () => Promise.resolve(answer()) }, (line) => lines.push(JSON.parse(line)));
    assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint);
    // The second failure within FORWARD_FAILURE_LOG_MS is not logged again.
    assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint);
    assert.deepEqual(lines.map((l) => [l.level, l.owner, l.url]), [["warn", "other", "http://o"]]);
  }
});

Deno.test("routing: a partition's owner is looked up once per cache period, and again after it failed", async () => {
  let lookups = 0;
  let reachable = true;
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const routing = (ownerCacheMs: number): StateRouting => ({
    registry: {
      instanceId: "self",
      owner: () => (lookups++, Promise.resolve({ instanceId: "other", httpUrl: "http://o" })),
    },
    forwardSecret: SECRET,
    kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
    ownerCacheMs,
    fetch: () =>
      reachable
        ? Promise.resolve(Response.json({ userId: "u1", n: 2, source: "memory" }))
        : Promise.reject(new TypeError("connection refused")),
  });
  const cached = createStateReader(runtime, store, routing(60_000));
  for (let i = 0; i < 5; i++) assert.equal((await cached.read("user", "u1", { forwarded: false }))?.source, "memory");
  assert.equal(lookups, 1, "five queries, one lookup");
  reachable = false;
  assert.deepEqual(await cached.read("user", "u1", { forwarded: false }), fromCheckpoint);
  reachable = true;
  assert.equal((await cached.read("user", "u1", { forwarded: false }))?.instance, "other");
  assert.equal(lookups, 2, "an unreachable owner is looked up again");

  lookups = 0;
  const uncached = createStateReader(runtime, store, routing(0));
  for (let i = 0; i < 3; i++) await uncached.read("user", "u1", { forwarded: false });
  assert.equal(lookups, 3);
});

Deno.test("routing: an owner lookup still unanswered is shared, not asked again, however long PostgreSQL stalls", async () => {
  // Each lookup is a query on the pool: asked again once the cache period passed while the last was unanswered (a
  // database frozen), every routed query queued one more per partition, all run once it answered, before the
  // checkpoints.
  let lookups = 0;
  const stalled = Promise.withResolvers<PartitionOwner>();
  const reader = createStateReader(
    { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime,
    {
      read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
    } as unknown as CheckpointStore,
    {
      registry: { instanceId: "self", owner: () => (lookups++, stalled.promise) },
      forwardSecret: SECRET,
      kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
      // Every lookup's period over at once: as when the queries come a second or more apart.
      ownerCacheMs: 0,
      fetch: () => Promise.resolve(Response.json({ userId: "u1", n: 2, source: "memory" })),
    },
  );
  const reads = [1, 2, 3].map(() => reader.read("user", "u1", { forwarded: false }));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(lookups, 1, "one lookup in flight for three queries");
  stalled.resolve({ instanceId: "other", httpUrl: "http://o" });
  for (const read of await Promise.all(reads)) assert.equal(read?.instance, "other");
  // Answered, the next query looks again (the period is over).
  await reader.read("user", "u1", { forwarded: false });
  assert.equal(lookups, 2);
});

Deno.test("routing: beyond the forwards in flight allowed, queries are answered from the checkpoint", async () => {
  const release = Promise.withResolvers<void>();
  let fetched = 0;
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const reader = createStateReader(runtime, store, {
    registry: { instanceId: "self", owner: () => Promise.resolve({ instanceId: "other", httpUrl: "http://o" }) },
    forwardSecret: SECRET,
    kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
    maxForwards: 2,
    fetch: async () => {
      fetched++;
      await release.promise;
      return Response.json({ userId: "u1", n: 2, source: "memory" });
    },
  });
  const slow = [reader.read("user", "u1", { forwarded: false }), reader.read("user", "u1", { forwarded: false })];
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint, "the third is not forwarded");
  assert.equal(fetched, 2);
  release.resolve();
  for (const answer of await Promise.all(slow)) assert.equal(answer?.instance, "other");
  assert.equal((await reader.read("user", "u1", { forwarded: false }))?.instance, "other", "forwarding again");
});

Deno.test("queries are routed by the partition count the log has for a topic, not the configured one", async () => {
  const counts: Record<string, number> = { events: 4, "product-events": 7, analytics: 1 };
  const kinds = await routedKinds({ events: "events", productEvents: "product-events", analytics: "analytics" }, {
    partitionCount: (topic) => Promise.resolve(counts[topic]),
  });
  assert.equal(
    kinds.user.partitions,
    4,
    "an events topic created with 4 partitions keeps them, whatever PARTITIONS says",
  );
  assert.equal(kinds.product.partitions, 7);
  assert.equal(kinds.user.path?.("a b"), "/v1/users/a%20b");
  assert.deepEqual(kinds.global, { topic: "analytics", partitions: 1 }, "analytics are routed whole, by no state path");
});

/** A router for the global actor's analytics, whose partition `ownsIt` or not; the owner answers `answer`. */
function analyticsSetup(
  options: {
    ownsIt?: boolean;
    /** The partition's owner in PostgreSQL; by default as the runtime has it. */
    owner?: PartitionOwner;
    answer?: (init?: RequestInit) => Promise<Response>;
    timeoutMs?: number;
  },
) {
  const calls: Request[] = [];
  const runtime = {
    lookup: () => undefined,
    owned: () => options.ownsIt ? ["analytics:0"] : [],
  } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { lastEventAt: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const routing: StateRouting = {
    registry: {
      instanceId: "self",
      owner: () =>
        Promise.resolve(
          options.owner ??
            (options.ownsIt
              ? { instanceId: "self", httpUrl: "http://self" }
              : { instanceId: "other", httpUrl: "http://o" }),
        ),
    },
    forwardSecret: SECRET,
    kinds: { global: { topic: "analytics", partitions: 1 } },
    timeoutMs: options.timeoutMs,
    fetch: (input, init) => {
      calls.push(new Request(input, init));
      return options.answer?.(init) ??
        Promise.resolve(Response.json({ views: 15, source: "memory", instance: "other" }, {
          headers: { [INSTANCE_HEADER]: "other" },
        }));
    },
  };
  return { router: createStateReader(runtime, store, routing), calls };
}

const analyticsQuery = (headers: Record<string, string> = {}) =>
  new Request("http://self/v1/analytics/funnel?window=7d", { headers });

Deno.test("routing: an analytics query is answered by the global actor's owner, path and parameters as asked", async () => {
  const { router, calls } = analyticsSetup({});
  const answer = await router.route("global", "global", analyticsQuery());
  assert.equal(answer?.status, 200);
  assert.equal(answer?.headers.get(INSTANCE_HEADER), "other");
  assert.deepEqual(await answer?.json(), { views: 15, source: "memory", instance: "other" });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "http://o/v1/analytics/funnel?window=7d");
  assert.equal(calls[0].headers.get(FORWARDED_HEADER), SECRET);
});

Deno.test("routing: an analytics query forwarded here, or whose partition is owned here, is answered here", async () => {
  for (
    const [options, request] of [
      [{}, analyticsQuery({ [FORWARDED_HEADER]: "1" })],
      [{ ownsIt: true }, analyticsQuery()],
    ] as const
  ) {
    const { router, calls } = analyticsSetup(options);
    assert.equal(await router.route("global", "global", request), undefined);
    assert.equal(calls.length, 0);
  }
  const { router, calls } = analyticsSetup({});
  assert.equal(await router.route("user", "u1", analyticsQuery()), undefined, "a kind without routing");
  assert.deepEqual(
    await router.read("global", "global", { forwarded: false }),
    { state: { lastEventAt: 1 }, source: "checkpoint", asOf: UPDATED.toISOString(), instance: "self" },
    "the global state itself is never forwarded (no route serves it)",
  );
  assert.equal(calls.length, 0);
  const unrouted = createStateReader(
    { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime,
    {} as CheckpointStore,
  );
  assert.equal(await unrouted.route("global", "global", analyticsQuery()), undefined, "no routing at all");
});

Deno.test("routing: an analytics query whose partition this instance holds but another has claimed since goes to that one", async () => {
  const { router, calls } = analyticsSetup({ ownsIt: true, owner: { instanceId: "other", httpUrl: "http://o" } });
  const answer = await router.route("global", "global", analyticsQuery());
  assert.equal(answer?.headers.get(INSTANCE_HEADER), "other");
  assert.equal(calls.length, 1);
});

Deno.test("routing: an analytics owner that is unreachable, failing, not JSON or stalled mid-answer is not the answer", async () => {
  // A body that never ends, aborted by the request's signal as fetch's own bodies are.
  const stalled = (init?: RequestInit) =>
    Promise.resolve(
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("{"));
            init?.signal?.addEventListener("abort", () => c.error(init.signal!.reason));
          },
        }),
        { headers: { "content-type": "application/json" } },
      ),
    );
  const cases = [
    { answer: () => Promise.reject(new TypeError("connection refused")) },
    { answer: () => Promise.resolve(Response.json({ type: "about:blank" }, { status: 503 })) },
    { answer: () => Promise.resolve(new Response("not json", { status: 200 })) },
    { answer: stalled, timeoutMs: 20 },
  ];
  for (const options of cases) {
    const { router } = analyticsSetup(options);
    assert.equal(await router.route("global", "global", analyticsQuery()), undefined, JSON.stringify(options));
  }
});

Deno.test("routing: an owner address that leads back to this instance is a failed forward, logged (a wrong ADVERTISED_URL)", async () => {
  // E.g. ADVERTISED_URL=http://localhost:8080 on every host: each instance dials itself, answers from its own
  // checkpoint, and the forward looked like a success; README promises the wrong address shows in the logs.
  const lines: Record<string, unknown>[] = [];
  const { reader, calls } = setup(
    {
      answer: () => Promise.resolve(Response.json({ ...fromCheckpoint.state, source: "checkpoint", instance: "self" })),
    },
    (line) => lines.push(JSON.parse(line)),
  );
  assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint);
  assert.equal(calls.length, 1);
  assert.deepEqual(lines.map((l) => [l.level, l.owner, l.url]), [["warn", "other", "http://o"]]);
  assert.match(String((lines[0].error as { message?: string }).message), /this instance itself/);

  const { router } = analyticsSetup({
    answer: () =>
      Promise.resolve(Response.json({ views: 1, source: "checkpoint" }, { headers: { [INSTANCE_HEADER]: "self" } })),
  });
  assert.equal(
    await router.route("global", "global", analyticsQuery()),
    undefined,
    "answered here, not as the owner's",
  );
});

Deno.test("routing: a 404 that an owner address leading back here answers is a failed forward, logged too", async () => {
  // The same wrong ADVERTISED_URL, for a key this instance's checkpoint does not hold: its own route answers the
  // forwarded query 404, which was taken for the owner's "no such key" and never logged.
  const lines: Record<string, unknown>[] = [];
  const calls: Request[] = [];
  let checkpointReads = 0;
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  const store = {
    read: () => {
      checkpointReads++;
      return Promise.resolve(null);
    },
  } as unknown as CheckpointStore;
  const reader = createStateReader(runtime, store, {
    registry: { instanceId: "self", owner: () => Promise.resolve({ instanceId: "other", httpUrl: "http://o" }) },
    forwardSecret: SECRET,
    kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${encodeURIComponent(key)}` } },
    // The owner's address reaches this very instance: its own route answers.
    fetch: async (input, init) => {
      const request = new Request(input, init);
      calls.push(request);
      return await Promise.resolve(stateRoute(reader, "user")(request, { id: "u1" })).catch(errorResponse);
    },
    logger: createLogger("warn", (line) => lines.push(JSON.parse(line))),
  });
  assert.equal(await reader.read("user", "u1", { forwarded: false }), null, "nor does the checkpoint hold it");
  assert.equal(calls.length, 1);
  assert.equal(checkpointReads, 2, "the forwarded read, then the asker's own fallback");
  assert.deepEqual(lines.map((l) => [l.level, l.owner, l.url]), [["warn", "other", "http://o"]]);
  assert.match(String((lines[0].error as { message?: string }).message), /this instance itself/);

  // A 404 from the real owner is still the answer, and is not logged.
  const owner = createStateReader(runtime, store, {
    registry: { instanceId: "other", owner: () => Promise.resolve(null) },
    forwardSecret: SECRET,
    kinds: {},
  });
  const { reader: asker } = setup({
    answer: async () =>
      await Promise.resolve(
        stateRoute(owner, "user")(new Request("http://o/v1/users/u1", { headers: { [FORWARDED_HEADER]: "1" } }), {
          id: "u1",
        }),
      ).catch(errorResponse),
  }, (line) => lines.push(JSON.parse(line)));
  assert.equal(await asker.read("user", "u1", { forwarded: false }), null);
  assert.equal(lines.length, 1);
});

/** Ids a query carries to the owner: reserved characters, unicode forms, case, length. */
const ROUTED_IDS = [
  "a/b",
  "a?b#c",
  "100% off",
  "x+y=z&w",
  "ü 😀",
  "%2F",
  "a\\b",
  "...",
  // The same text in NFC and NFD, and ids that differ in case alone: each its own key, as posted.
  "caf\u00e9",
  "cafe\u0301",
  "Bob",
  "bob",
  "x".repeat(128),
  "\u{1F600}".repeat(128),
  "%2E",
  " lead and trail ",
];

/** Asks for every id of ROUTED_IDS, as a user and as a product, through a reader whose owner is `owner` at `httpUrl`. */
async function forwardsEveryId(httpUrl: string, transport: StateRouting["fetch"], owner: { asked: string[] }) {
  const kinds = await routedKinds({ events: "events", productEvents: "product-events", analytics: "analytics" }, {
    partitionCount: () => Promise.resolve(6),
  });
  const asker = createStateReader(
    { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime,
    { read: () => Promise.reject(new Error("the owner answers")) } as unknown as CheckpointStore,
    {
      registry: { instanceId: "self", owner: () => Promise.resolve({ instanceId: "owner", httpUrl }) },
      forwardSecret: FIXTURE_FORWARD_SECRET,
      kinds,
      ...(transport ? { fetch: transport } : {}),
    },
  );
  for (const kind of ["user", "product"] as const) {
    for (const id of ROUTED_IDS) {
      const found = await asker.read(kind, id, { forwarded: false });
      assert.deepEqual(found?.state, { [`${kind}Id`]: id, eventCount: 1 }, `${kind} ${id}`);
      assert.equal(found?.instance, "owner");
    }
  }
  assert.deepEqual(owner.asked, ["user", "product"].flatMap((kind) => ROUTED_IDS.map((id) => `${kind} ${id}`)));
}

/** The owner: the real routes over a reader that holds every id in memory, noting each asked for. */
async function ownerOfEveryId() {
  const asked: string[] = [];
  const fixture = await httpFixture({
    instance: "owner",
    read: (kind, key) => {
      asked.push(`${kind} ${key}`);
      return Promise.resolve({ state: { [`${kind}Id`]: key, eventCount: 1 }, source: "memory", instance: "owner" });
    },
  });
  return { asked, handle: fixture.handle };
}

Deno.test("routing: ids with reserved characters reach the owner's route as the same id, and its answer comes back", async () => {
  const owner = await ownerOfEveryId();
  await forwardsEveryId(BASE, (input, init) => owner.handle(new Request(input, init)), owner);
});

Deno.test("routing: every id reaches the owner's route as the same id over a real listener and fetch", async () => {
  const owner = await ownerOfEveryId();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, owner.handle);
  try {
    await forwardsEveryId(`http://127.0.0.1:${server.addr.port}`, undefined, owner);
  } finally {
    await server.shutdown();
  }
});

Deno.test("routing: an owner address that redirects is a failed forward, the secret never sent where it leads", async () => {
  // Where the redirect leads: any server, which must not learn the group's secret (with it, a client's query is taken
  // as another instance's).
  const seen: (string | null)[] = [];
  const elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push(request.headers.get(FORWARDED_HEADER));
    return Response.json({ userId: "u1", n: 2, source: "memory" });
  });
  const redirects = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => Response.redirect(`http://127.0.0.1:${elsewhere.addr.port}${new URL(request.url).pathname}`, 307),
  );
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const lines: Record<string, unknown>[] = [];
  try {
    for (const asked of ["user", "analytics"] as const) {
      const reader = createStateReader(runtime, store, {
        registry: {
          instanceId: "self",
          owner: () => Promise.resolve({ instanceId: "other", httpUrl: `http://127.0.0.1:${redirects.addr.port}` }),
        },
        forwardSecret: SECRET,
        kinds: {
          user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` },
          global: { topic: "analytics", partitions: 1 },
        },
        logger: createLogger("warn", (line) => lines.push(JSON.parse(line))),
      });
      if (asked === "user") {
        assert.deepEqual(await reader.read("user", "u1", { forwarded: false }), fromCheckpoint);
      } else {
        assert.equal(await reader.route("global", "global", new Request("http://x/v1/analytics/realtime")), undefined);
      }
    }
  } finally {
    await redirects.shutdown();
    await elsewhere.shutdown();
  }
  assert.deepEqual(seen, []);
  assert.equal(lines.length, 2);
  for (const line of lines) assert.match(JSON.stringify(line.error), /redirect, not followed/);
});

Deno.test("routing: an id longer than any key is unknown at once, never forwarded nor logged as the owner's failure", async () => {
  // 25,000 ':' (sent as is in a path) make a forward URL of 75,000 bytes, which fetch refuses: the client's id was
  // logged as a forward the owner failed, and its cached owner forgotten.
  const asked: string[] = [];
  const owner = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    asked.push(new URL(request.url).pathname);
    return errorResponse(new NotFoundError("no such key"));
  });
  const lines: Record<string, unknown>[] = [];
  const reads: string[] = [];
  const reader = createStateReader(
    { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime,
    { read: (_kind: string, key: string) => (reads.push(key), Promise.resolve(null)) } as unknown as CheckpointStore,
    {
      registry: {
        instanceId: "self",
        owner: () => Promise.resolve({ instanceId: "other", httpUrl: `http://127.0.0.1:${owner.addr.port}` }),
      },
      forwardSecret: SECRET,
      kinds: await routedKinds({ events: "events", productEvents: "product-events", analytics: "analytics" }, {
        partitionCount: () => Promise.resolve(6),
      }),
      logger: createLogger("warn", (line) => lines.push(JSON.parse(line))),
    },
  );
  try {
    for (const kind of ["user", "product"] as const) {
      const route = stateRoute(reader, kind);
      const request = new Request(`${BASE}/v1/${kind}s/x`);
      // Lengths as the events' ids are measured: in code points.
      for (const id of [":".repeat(25_000), "x".repeat(kind === "user" ? 129 : 257), "\u{1F600}".repeat(257)]) {
        await assert.rejects(async () => await route(request, { id }), NotFoundError, `${kind} of ${id.length}`);
      }
      // At the longest a key can be, the owner is asked as for any other.
      await assert.rejects(async () => await route(request, { id: "x".repeat(kind === "user" ? 128 : 256) }));
      await assert.rejects(async () => await route(request, { id: "\u{1F600}".repeat(kind === "user" ? 128 : 256) }));
    }
  } finally {
    await owner.shutdown();
  }
  assert.deepEqual(lines, []);
  const emoji = encodeURIComponent("\u{1F600}").length;
  assert.deepEqual(asked.map((path) => path.length), [
    "/v1/users/".length + 128,
    "/v1/users/".length + 128 * emoji,
    "/v1/products/".length + 256,
    "/v1/products/".length + 256 * emoji,
  ]);
  assert.deepEqual(reads, []);
});
