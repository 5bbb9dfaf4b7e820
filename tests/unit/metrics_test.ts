import assert from "node:assert/strict";
import { Metrics } from "../../engine/metrics.ts";
import { Harness, recorderLogic } from "../helpers/runtime.ts";

Deno.test("metrics count what the runtime did, and a released partition stops reporting lag", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const h = new Harness(recorderLogic(), 2);
  h.instrumentation = metrics;
  await h.start();
  for (let n = 0; n < 40; n++) h.send(`k${n % 4}`, { n });
  h.log.appendNow([{ topic: h.topics.events, key: "k0", value: "not json" }]);
  await h.drained();
  await h.runtime.housekeep();
  const during = (await metrics.render()).body;
  assert.match(during, /engine_events_processed_total\{kind="recorder",type="recorder"\} 40/);
  assert.match(during, /engine_dlq_records_total\{topic="events",code="validation_failed"\} 1/);
  assert.match(during, /engine_actors_total\{kind="recorder",change="activated"\} 4/);
  assert.match(during, /engine_consumer_lag_records\{topic="events",partition="\d"\} 0/);
  assert.match(during, /engine_checkpoint_duration_seconds_count\{topic="events"\} [1-9]/);
  await h.stop();
  const after = (await metrics.render()).body;
  assert.doesNotMatch(after, /engine_consumer_lag_records\{/);
});
