/**
 * What POST /v1/events reads as a body, at the edges of its rules: the byte limit (declared and
 * streamed) exactly at and one past MAX_BODY_BYTES, a declared length over it refused before a byte is
 * read, NDJSON's event count taken before any line is parsed and without its blank lines, and a
 * batch of one still reported by index: each a boundary the README states.
 */
import assert from "node:assert/strict";
import { MAX_LISTED_PROBLEMS } from "../../engine/errors.ts";
import { createLogger } from "../../engine/logger.ts";
import { createHandler } from "../../http/server.ts";
import { BASE, FIXTURE_LIMITS, httpFixture, pageView, postEvents } from "./http_fixture.ts";

const encoder = new TextEncoder();

/** One page view padded with trailing whitespace (valid JSON) to exactly `bytes` bytes. */
function paddedEvent(bytes: number): Uint8Array<ArrayBuffer> {
  const json = JSON.stringify(pageView("alice"));
  return encoder.encode(json + " ".repeat(bytes - encoder.encode(json).byteLength));
}

/** A POST whose body arrives as a stream of `bytes` in 1 KiB chunks, with no declared length; counts reads. */
function streamedPost(
  bytes: Uint8Array,
  headers: Record<string, string> = {},
): { request: Request; reads: () => number } {
  let at = 0;
  let reads = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      reads++;
      if (at >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(at, at + 1024));
      at += 1024;
    },
  }, { highWaterMark: 0 });
  const request = new Request(`${BASE}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { request, reads: () => reads };
}

async function status(response: Response): Promise<number> {
  await response.body?.cancel();
  return response.status;
}

Deno.test("POST /v1/events takes a body of exactly MAX_BODY_BYTES, streamed or declared, and refuses one byte more", async () => {
  const { handle, log, topics } = await httpFixture();
  const limit = FIXTURE_LIMITS.maxBodyBytes;
  assert.equal(await status(await handle(streamedPost(paddedEvent(limit)).request)), 202, "streamed, at the limit");
  assert.equal(await status(await handle(streamedPost(paddedEvent(limit + 1)).request)), 413, "streamed, one past");
  const declared = (bytes: number) =>
    new Request(`${BASE}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(bytes) },
      body: paddedEvent(bytes),
    });
  assert.equal(await status(await handle(declared(limit))), 202, "declared, at the limit");
  assert.equal(await status(await handle(declared(limit + 1))), 413, "declared, one past");
  assert.equal(log.all(topics.events).length, 2);
});

Deno.test("POST /v1/events refuses a declared length over MAX_BODY_BYTES before reading any of the body", async () => {
  const { handle, log, topics } = await httpFixture();
  // The declared length is what the client announces: nothing of a body it says is too large is read.
  const { request, reads } = streamedPost(paddedEvent(1024), {
    "content-length": String(FIXTURE_LIMITS.maxBodyBytes + 1),
  });
  const response = await handle(request);
  assert.equal(await status(response), 413);
  assert.equal(reads(), 0, "no chunk of the body was read");
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("NDJSON over MAX_BATCH_EVENTS is a 413 before any line is parsed; blank and whitespace lines are not events", async () => {
  const { handle, log, topics } = await httpFixture();
  const max = FIXTURE_LIMITS.maxEvents;
  const lines = Array.from({ length: max }, (_, i) => JSON.stringify(pageView(`u${i}`)));
  // One line too many, one of them not JSON: refused as too many (413), not listed as a bad line (400).
  const response = await handle(postEvents([...lines, "{not json"].join("\n"), "application/x-ndjson"));
  assert.equal(await status(response), 413);
  // Exactly the limit, with blank lines, lines of spaces and tabs, and CRLF: all accepted, none counted.
  const spaced = lines.flatMap((line) => [line, "", "  \t "]).join("\r\n") + "\n \n";
  const accepted = await handle(postEvents(spaced, "application/x-ndjson"));
  assert.equal(accepted.status, 202);
  assert.equal((await accepted.json()).accepted, max);
  assert.equal(log.all(topics.events).length, max);
});

Deno.test("NDJSON lines that are not JSON are listed up to MAX_LISTED_PROBLEMS, saying so", async () => {
  // MAX_BATCH_EVENTS may be 100,000: as many broken lines made an answer of some 10 MB.
  const { handle, log, topics } = await httpFixture(undefined, { maxEvents: 3000, maxBodyBytes: 64 * 1024 });
  const broken = Array.from({ length: MAX_LISTED_PROBLEMS + 500 }, () => "{").join("\n");
  const response = await handle(postEvents(broken, "application/x-ndjson"));
  assert.equal(response.status, 400);
  const body = await response.json();
  assert.equal(body.errors.length, MAX_LISTED_PROBLEMS);
  assert.deepEqual(body.errors.slice(0, 2).map((e: { path: string }) => e.path), ["line 1", "line 2"]);
  assert.equal(
    body.detail,
    `${
      MAX_LISTED_PROBLEMS + 500
    } line(s) are not valid JSON; none was accepted; only the first ${MAX_LISTED_PROBLEMS} are listed`,
  );
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("a JSON array of one event, and NDJSON of one line, are batches: problems are prefixed by the index", async () => {
  const { handle } = await httpFixture();
  const bad = { type: "page_viewed", userId: "alice", properties: {} };
  for (
    const [body, type] of [
      [JSON.stringify([bad]), "application/json"],
      [JSON.stringify(bad) + "\n", "application/x-ndjson"],
      [JSON.stringify(bad), "application/json"],
    ] as const
  ) {
    const response = await handle(postEvents(body, type));
    assert.equal(response.status, 400);
    const paths = (await response.json()).errors.map((e: { path: string }) => e.path);
    assert.deepEqual(paths, [
      body.startsWith("[") || type !== "application/json" ? "0.properties.url" : "properties.url",
    ]);
  }
});

Deno.test("POST /v1/events reads media types case-insensitively and takes `utf8` as UTF-8, as RFC 9110 and 3629 allow", async () => {
  const { handle, log, topics } = await httpFixture();
  const json = JSON.stringify(pageView("alice"));
  for (
    const type of [
      "Application/JSON",
      "APPLICATION/X-NDJSON",
      "application/json; charset=utf8",
      "application/json;charset=UTF-8",
      'application/json; charset="utf-8"',
    ]
  ) {
    assert.equal(await status(await handle(postEvents(json, type))), 202, type);
  }
  assert.equal(log.all(topics.events).length, 5);
});

Deno.test("POST /v1/events reads Content-Encoding as the list RFC 9110 makes it: empty, or identity, is no coding", async () => {
  const { handle, log, topics } = await httpFixture();
  const json = JSON.stringify(pageView("alice"));
  const withEncoding = (encoding: string) => {
    const request = postEvents(json);
    request.headers.set("content-encoding", encoding);
    return request;
  };
  for (const encoding of ["", "identity", "Identity", " , identity,"]) {
    assert.equal(await status(await handle(withEncoding(encoding))), 202, `'${encoding}'`);
  }
  assert.equal(log.all(topics.events).length, 4);
  // Any coding in the list is one the body is in: refused, named, whatever else the list holds.
  for (const [encoding, named] of [["gzip", "gzip"], ["identity, br", "br"], ["gzip, identity", "gzip"]]) {
    const response = await handle(withEncoding(encoding));
    assert.equal(response.status, 415, encoding);
    // RFC 9110 §15.5.16: a 415 for a content coding says in Accept-Encoding which codings would do (RFC 7694).
    assert.equal(response.headers.get("accept-encoding"), "identity", encoding);
    assert.match(String((await response.json()).detail), new RegExp(`content encoding '${named}'`), encoding);
  }
  // A 415 for the media type is not about codings.
  const wrongType = await handle(postEvents(json, "text/plain"));
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.headers.get("accept-encoding"), null);
  await wrongType.body?.cancel();
  assert.equal(log.all(topics.events).length, 4);
});

Deno.test("a body that stalls mid-upload is a 408 once no byte came for the idle timeout, not a request held for ever", async () => {
  const { handle, log, topics } = await httpFixture(undefined, { ...FIXTURE_LIMITS, bodyIdleTimeoutMs: 50 });
  let cancelled = false;
  let sent = false;
  // Half an event, then nothing: the client neither sends the rest nor closes the connection.
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return new Promise<void>(() => {});
      sent = true;
      controller.enqueue(encoder.encode('{"type":"page_viewed",'));
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  const request = new Request(`${BASE}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  // A bound on the test, far above the idle timeout: without one, the request was never answered.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = await Promise.race([
    handle(request),
    new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 10_000)),
  ]);
  clearTimeout(timer);
  if (answer === null) await body.cancel().catch(() => {});
  assert.ok(answer, "the stalled request was answered");
  assert.equal(answer.status, 408);
  assert.equal(answer.headers.get("content-type"), "application/problem+json");
  const problem = await answer.json();
  assert.equal(problem.type, "urn:actor-engine:problem:request_timeout");
  assert.match(problem.detail, /no byte of the request body arrived for 0\.05 s/);
  assert.ok(cancelled, "the body stream was cancelled");
  assert.equal(log.all(topics.events).length, 0);
});

Deno.test("a body that breaks off (the client went away mid-upload) is a 400 naming the body, not a 500", async () => {
  const lines: string[] = [];
  const { routes, log, topics } = await httpFixture();
  const handle = createHandler(routes, createLogger("warn", (line) => lines.push(line)));
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(new Deno.errors.BadResource("underlying resource unavailable"));
      sent = true;
      controller.enqueue(encoder.encode('{"type":"page_viewed",'));
    },
  });
  const request = new Request(`${BASE}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const response = await handle(request);
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const problem = await response.json();
  assert.deepEqual(problem.errors.map((e: { path: string }) => e.path), ["(body)"]);
  assert.match(problem.detail, /could not be read/);
  // A client error: no error line for the operator, and nothing stored.
  assert.deepEqual(lines, []);
  assert.equal(log.all(topics.events).length, 0);
});
