/**
 * A product's state and outputs do not depend on checkpoints: a run persisted to JSON and restored at random points
 * (a passivation, a restart) equals the uninterrupted run, over random facts from many user partitions, replays,
 * timer facts, inventory updates and retries (seeded, so that a failure can be replayed from its printed seed).
 */
import assert from "node:assert/strict";
import type { ActorContext } from "../../engine/actor.ts";
import { createProductLogic, type ProductState } from "../../actors/product.ts";
import type { ProductMessage } from "../../actors/facts.ts";
import { domainSettings } from "../../actors/settings.ts";
import { prng } from "../helpers/prng.ts";

const settings = domainSettings({ FACT_DEDUPE_WINDOW: 1024, FACT_DEDUPE_RECENT_IDS: 16, RELATED_CANDIDATES: 4 });
const logic = createProductLogic(settings);
const MINUTE = 60_000;

/** Random messages for product p1: facts from 6 user partitions (some repeated), timer facts, stock updates. */
function messages(random: () => number, count: number): ProductMessage[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  const offsets = [0, 0, 0, 0, 0, 0];
  const out: ProductMessage[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.1 && out.length > 0) {
      out.push(pick(out)); // a replayed or retried copy
      continue;
    }
    const at = Date.UTC(2026, 0, 1) + Math.floor(random() * 600) * MINUTE;
    if (r < 0.2) {
      out.push({
        eventId: crypto.randomUUID(),
        type: "inventory_updated",
        occurredAt: new Date(at).toISOString(),
        receivedAt: new Date(at).toISOString(),
        properties: { productId: "p1", stock: Math.floor(random() * 30) },
      } as unknown as ProductMessage);
      continue;
    }
    const partition = Math.floor(random() * offsets.length);
    offsets[partition] += 1 + Math.floor(random() * 50);
    const factId = r < 0.25 ? `timer-${crypto.randomUUID()}` : `events-${partition}-${offsets[partition]}-p0`;
    const base = { factId, productId: "p1", userId: `u${Math.floor(random() * 40)}`, session: "s", at };
    const related = Array.from({ length: Math.floor(random() * 3) }, () => `p${2 + Math.floor(random() * 8)}`);
    const kind = random();
    if (kind < 0.4) {
      out.push({
        fact: "product_viewed",
        ...base,
        category: pick(["a", "b"]),
        priceMillis: Math.floor(random() * 5) * 1000,
        coViewed: related,
        ...(random() < 0.5 ? { recommend: { exclude: related.slice(0, 1) } } : {}),
      });
    } else if (kind < 0.6) {
      out.push({ fact: "product_added_to_cart", ...base, quantity: 1 + Math.floor(random() * 3), priceMillis: 1000 });
    } else if (kind < 0.7) {
      out.push({ fact: "product_removed_from_cart", ...base, quantity: Math.floor(random() * 3) });
    } else if (kind < 0.9) {
      out.push({
        fact: "product_ordered",
        ...base,
        orderId: `o${i}`,
        quantity: 1 + Math.floor(random() * 4),
        revenueMillis: 2500,
        coBought: related,
      });
    } else {
      out.push({ fact: "co_occurrence", ...base, relation: pick(["viewed", "bought"] as const), related });
    }
  }
  return out;
}

/** Handles every message, persisting and restoring before those `restoreAt` says; returns the final form and outputs. */
function run(input: readonly ProductMessage[], restoreAt: (i: number) => boolean) {
  const emitted: unknown[] = [];
  let state: ProductState = logic.initial("p1");
  input.forEach((message, i) => {
    if (restoreAt(i)) state = logic.restore(JSON.parse(JSON.stringify(logic.persist(state))));
    const ctx: ActorContext = {
      now: () => 0,
      emit: (topic, key, value) => emitted.push({ topic, key, value }),
      outputId: (rule) => `product-events-0-${i}-${rule}`,
      setTimer: () => {},
      cancelTimer: () => {},
      timer: () => undefined,
    };
    state = logic.handle(state, message, ctx) as ProductState;
  });
  return { persisted: JSON.parse(JSON.stringify(logic.persist(state))), emitted };
}

Deno.test("a product persisted and restored at random points ends as the uninterrupted run, with the same outputs", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const random = prng(seed);
    const input = messages(random, 400);
    const plain = run(input, () => false);
    const restored = run(input, () => random() < 0.1);
    assert.deepEqual(restored.persisted, plain.persisted, `seed ${seed}`);
    assert.deepEqual(restored.emitted, plain.emitted, `seed ${seed}`);
  }
});
