import assert from "node:assert/strict";
import { incomingEvent } from "../../actors/events.ts";
import { Store } from "../../scripts/loadgen.ts";
import { prng } from "../helpers/prng.ts";

Deno.test("loadgen's simulated events are valid, with page load times in seconds (SPEC), not milliseconds", () => {
  const store = new Store(prng(7), 50);
  const loadTimes: number[] = [];
  for (let i = 0; i < 5_000; i++) {
    const event = store.next();
    const parsed = incomingEvent.safeParse(event);
    assert.ok(parsed.success, JSON.stringify(event));
    const loadTime = (event.properties as { loadTime?: number }).loadTime;
    if (event.type === "page_viewed" && loadTime !== undefined) loadTimes.push(loadTime);
  }
  assert.ok(loadTimes.length > 100);
  assert.ok(
    Math.min(...loadTimes) >= 0.2 && Math.max(...loadTimes) <= 2,
    `${Math.min(...loadTimes)}–${Math.max(...loadTimes)}`,
  );
});
