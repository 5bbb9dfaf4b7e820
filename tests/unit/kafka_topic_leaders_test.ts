/** waitForLeaders (engine/kafka_admin.ts): what topic creation waits for, answer by answer of the broker's metadata. */
import assert from "node:assert/strict";
import { type FetchTopicMetadata, waitForLeaders } from "../../engine/kafka_admin.ts";
import { LogUnavailableError } from "../../engine/errors.ts";

/** A kafkajs protocol error of `type`. */
function protocolError(type: string): Error {
  return Object.assign(new Error(`broker says ${type}`), { type });
}

/** A metadata reader answering `answers` in turn (an Error is thrown), the last one for ever; counts its calls. */
function scripted(answers: (Error | Record<string, number[]>)[]): FetchTopicMetadata & { calls: number } {
  const fetch = Object.assign(async (topics: readonly string[]) => {
    const answer = answers[Math.min(fetch.calls++, answers.length - 1)];
    await Promise.resolve();
    if (answer instanceof Error) throw answer;
    return {
      topics: topics.filter((t) => t in answer).map((name) => ({
        name,
        partitions: answer[name].map((leader, partitionId) => ({ partitionId, leader })),
      })),
    };
  }, { calls: 0 });
  return fetch;
}

Deno.test("waitForLeaders: reads again while the broker does not know the topics or their leaders, then returns", async () => {
  const fetch = scripted([
    protocolError("UNKNOWN_TOPIC_OR_PARTITION"),
    protocolError("LEADER_NOT_AVAILABLE"),
    { a: [1, 1] }, // b not listed yet
    { a: [1, 1], b: [-1] },
    { a: [1, 1], b: [1] },
  ]);
  await waitForLeaders(fetch, ["a", "b"], 5_000, 1);
  assert.equal(fetch.calls, 5);
});

Deno.test("waitForLeaders: any other error is the caller's at once", async () => {
  const fetch = scripted([protocolError("TOPIC_AUTHORIZATION_FAILED")]);
  await assert.rejects(waitForLeaders(fetch, ["a"], 5_000, 1), /TOPIC_AUTHORIZATION_FAILED/);
  assert.equal(fetch.calls, 1);
});

Deno.test("waitForLeaders: partitions without a leader past the timeout are a LogUnavailableError naming the topics", async () => {
  const fetch = scripted([{ a: [1], b: [-1, 1] }]);
  const error = await waitForLeaders(fetch, ["a", "b"], 30, 1).then(() => undefined, (e: Error) => e);
  assert.ok(error instanceof LogUnavailableError, String(error));
  assert.match(error.message, /no leader within 30 ms \(no leader yet for b\): a, b/);
});

Deno.test("waitForLeaders: kafkajs's wrapped error (retries exceeded) of a topic not known yet is waited on too", async () => {
  const wrapped = new Error("retries exceeded", { cause: protocolError("LEADER_NOT_AVAILABLE") });
  const fetch = scripted([wrapped, { a: [1] }]);
  await waitForLeaders(fetch, ["a"], 5_000, 1);
  assert.equal(fetch.calls, 2);
});

Deno.test("waitForLeaders: a metadata request kafkajs keeps retrying past the timeout does not hold the wait", async () => {
  const never: FetchTopicMetadata = () => new Promise(() => {});
  const started = performance.now();
  const error = await waitForLeaders(never, ["a"], 50, 1).then(() => undefined, (e: Error) => e);
  assert.ok(error instanceof LogUnavailableError, String(error));
  assert.match(error.message, /no leader within 50 ms \(no answer yet\)/);
  assert.ok(performance.now() - started < 5_000);
});
