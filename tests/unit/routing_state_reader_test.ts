/** The state reader's routing rules, with a fake runtime, store, registry and fetch. */
import assert from "node:assert/strict";
import type { CheckpointStore } from "../../engine/checkpoint.ts";
import type { PartitionOwner } from "../../engine/instance_registry.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import type { ActorRuntime } from "../../engine/runtime.ts";
import { createStateReader, FORWARDED_HEADER, routedKinds, type StateRouting } from "../../engine/state_reader.ts";

const TOPIC = "events";
const UPDATED = new Date("2026-11-01T00:00:00Z");

/** A reader for a user `u1` that is not in memory, whose partition `ownsIt` or not, owned by `owner`. */
function setup(options: { ownsIt?: boolean; owner?: PartitionOwner | null; answer?: () => Promise<Response> }) {
  const calls: Request[] = [];
  const runtime = {
    lookup: () => undefined,
    owned: () => options.ownsIt ? [`${TOPIC}:${partitionForKey("u1", 6)}`] : [],
  } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const routing: StateRouting = {
    registry: {
      instanceId: "self",
      owner: () =>
        Promise.resolve(options.owner === undefined ? { instanceId: "other", httpUrl: "http://o" } : options.owner),
    },
    kinds: { user: { topic: TOPIC, partitions: 6, path: (key) => `/v1/users/${key}` } },
    fetch: (input, init) => {
      calls.push(new Request(input, init));
      return options.answer?.() ?? Promise.resolve(Response.json({ userId: "u1", n: 2, source: "memory" }));
    },
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
  assert.equal(calls[0].headers.get(FORWARDED_HEADER), "1");
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
  const { reader } = setup({ answer: () => Promise.resolve(new Response("{}", { status: 404 })) });
  assert.equal(await reader.read("user", "u1", { forwarded: false }), null);
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

Deno.test("routing: beyond the forwards in flight allowed, queries are answered from the checkpoint", async () => {
  const release = Promise.withResolvers<void>();
  let fetched = 0;
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  const store = {
    read: () => Promise.resolve({ state: { userId: "u1", n: 1 }, updatedAt: UPDATED }),
  } as unknown as CheckpointStore;
  const reader = createStateReader(runtime, store, {
    registry: { instanceId: "self", owner: () => Promise.resolve({ instanceId: "other", httpUrl: "http://o" }) },
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
  const counts: Record<string, number> = { events: 4, "product-events": 7 };
  const kinds = await routedKinds({ events: "events", productEvents: "product-events" }, {
    partitionCount: (topic) => Promise.resolve(counts[topic]),
  });
  assert.equal(
    kinds.user.partitions,
    4,
    "an events topic created with 4 partitions keeps them, whatever PARTITIONS says",
  );
  assert.equal(kinds.product.partitions, 7);
  assert.equal(kinds.user.path("a b"), "/v1/users/a%20b");
});
