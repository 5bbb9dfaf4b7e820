/**
 * Admission control of POST /v1/events (MAX_INGEST_PENDING_BYTES): with the log's acknowledgements
 * held, concurrent requests are admitted while the bytes of their records waiting for the log stay
 * within the limit, and the rest are answered 429 with Retry-After, storing nothing of them; the
 * limit is released when an append settles (acknowledged, failed or timed out, whatever became of
 * the client), so that nothing leaks. On a stand-in log whose acknowledgements the test holds, and
 * on the embedded log held by a transaction.
 */
import assert from "node:assert/strict";
import { topicNames } from "../../engine/config.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { EmbeddedLog } from "../../engine/embedded_log.ts";
import { IngestOverloadedError, LogUnavailableError } from "../../engine/errors.ts";
import { IngestAdmission } from "../../engine/ingest_admission.ts";
import { recordBytes } from "../../engine/kafka_producer.ts";
import type { LogProducer, OutgoingRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { Metrics } from "../../engine/metrics.ts";
import { buildRoutes } from "../../http/routes.ts";
import { createHandler } from "../../http/server.ts";
import { FIXTURE_NOW, pageView, postEvents } from "./http_fixture.ts";

/** The limit of these tests: a few requests' worth. */
const LIMIT = 16 * 1024;
/** Events per request: each request's records take about 4 KiB. */
const PER_REQUEST = 20;

/** An append the stand-in log holds until the test answers it. */
interface HeldAppend {
  readonly records: readonly OutgoingRecord[];
  readonly bytes: number;
  readonly acknowledge: () => void;
  readonly fail: (error: Error) => void;
}

/** A log whose appends wait for the test: what is held at once is what ingestion keeps in memory. */
class HeldLog {
  readonly log = new MemoryLog(() => FIXTURE_NOW);
  readonly held: HeldAppend[] = [];
  /** Most bytes and records held at once. */
  peakBytes = 0;
  peakRecords = 0;

  heldBytes(): number {
    return this.held.reduce((sum, h) => sum + h.bytes, 0);
  }

  producer(): LogProducer {
    return {
      append: (records) => {
        const { promise, resolve, reject } = Promise.withResolvers<void>();
        const entry: HeldAppend = {
          records,
          bytes: recordBytes(records),
          acknowledge: () => {
            this.held.splice(this.held.indexOf(entry), 1);
            this.log.appendNow(records);
            resolve();
          },
          fail: (error) => {
            this.held.splice(this.held.indexOf(entry), 1);
            reject(error);
          },
        };
        this.held.push(entry);
        this.peakBytes = Math.max(this.peakBytes, this.heldBytes());
        this.peakRecords = Math.max(this.peakRecords, this.held.reduce((n, h) => n + h.records.length, 0));
        return promise;
      },
      close: () => Promise.resolve(),
    };
  }

  acknowledgeAll(): void {
    for (const h of [...this.held]) h.acknowledge();
  }

  failAll(error: Error): void {
    for (const h of [...this.held]) h.fail(error);
  }
}

/** The real route table over `producer`, with `maxPendingBytes`. */
async function fixture(producer: LogProducer, log: MemoryLog | null, maxPendingBytes = LIMIT) {
  const topics = topicNames({ TOPIC_PREFIX: "" });
  await log?.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 3 })));
  const metrics = new Metrics({ defaultMetrics: false });
  const routes = buildRoutes({
    producer,
    topics,
    reader: { read: () => Promise.resolve(null) },
    ingest: { rules: { maxFutureMs: 5 * 60_000 }, maxEvents: 1000, maxBodyBytes: 1024 * 1024, maxPendingBytes },
    now: () => FIXTURE_NOW,
    instrumentation: metrics,
  });
  return { topics, metrics, handle: createHandler(routes, silentLogger, metrics) };
}

/** A request of PER_REQUEST page views of users named after `n` (every request the same size). */
function batch(n: number, size = PER_REQUEST): Request {
  const events = Array.from({ length: size }, (_, i) => pageView(`u${String(n).padStart(4, "0")}-${i}`));
  return postEvents(JSON.stringify(events));
}

/** Waits (without a deadline of its own: the test's is enough) until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 1));
}

/**
 * Starts `n` concurrent requests; resolves once each was either answered or is waiting for the log,
 * with the indexes of those answered by then.
 */
async function flood(
  handle: (request: Request) => Promise<Response>,
  n: number,
  waiting: () => number,
  first = 0,
): Promise<{ answers: Promise<Response>[]; settled: Set<number> }> {
  const settled = new Set<number>();
  const answers = Array.from({ length: n }, (_, i) => {
    const answer = handle(batch(first + i));
    answer.then(() => settled.add(i));
    return answer;
  });
  await until(() => settled.size + waiting() === n);
  // Those answered before the log answered anything: the refused.
  return { answers, settled: new Set(settled) };
}

/** Asserts a 429 problem naming the setting, with Retry-After. */
/** The eventIds of every answer not among the `refused` ones, each of which must be a 202. */
async function acceptedIds(answers: readonly Promise<Response>[], refused: ReadonlySet<number>): Promise<string[]> {
  const accepted: string[] = [];
  for (let i = 0; i < answers.length; i++) {
    if (refused.has(i)) continue;
    const response = await answers[i];
    assert.equal(response.status, 202);
    accepted.push(...(await response.json()).eventIds);
  }
  return accepted;
}

async function assertRefused(response: Response): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, 429, text);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  // README: `Retry-After: 1`; the appends it waits for are answered within PUBLISH_TIMEOUT_MS at the latest.
  assert.equal(response.headers.get("retry-after"), "1", "Retry-After");
  const body = JSON.parse(text);
  assert.equal(body.status, 429);
  assert.equal(body.type, "urn:actor-engine:problem:ingest_overloaded");
  assert.match(body.detail, /MAX_INGEST_PENDING_BYTES \(16384\)/);
}

/** The eventIds stored in `topic`. */
function storedIds(log: MemoryLog, topic: string): string[] {
  return log.all(topic).map((r) => JSON.parse(new TextDecoder().decode(r.value!)).eventId);
}

Deno.test("POST /v1/events admits requests while their records waiting for the log fit MAX_INGEST_PENDING_BYTES, 429 beyond", async () => {
  const held = new HeldLog();
  const { handle, topics, metrics } = await fixture(held.producer(), held.log);
  const n = 40;
  const { answers, settled } = await flood(handle, n, () => held.held.length);
  // Before: every one of the 40 requests waited for the log (about 160 KiB held, ten times the limit).
  const perRequest = held.held[0].bytes;
  assert.ok(perRequest > 3_000 && perRequest < LIMIT / 2, `${perRequest} bytes per request`);
  const admitted = Math.floor(LIMIT / perRequest);
  assert.equal(held.held.length, admitted, `${held.held.length} of ${n} requests held at once`);
  assert.ok(held.peakBytes <= LIMIT, `${held.peakBytes} bytes held at once`);
  assert.equal(settled.size, n - admitted);
  const refused = [...settled];
  for (const i of refused) await assertRefused(await answers[i]);
  assert.deepEqual(storedIds(held.log, topics.events), [], "nothing stored yet, nothing of the refused ever");

  held.acknowledgeAll();
  const accepted = await acceptedIds(answers, settled);
  assert.equal(accepted.length, admitted * PER_REQUEST);
  assert.deepEqual(storedIds(held.log, topics.events).sort(), accepted.sort(), "every accepted event, no other");

  // Released: as many are admitted again.
  const again = await flood(handle, admitted, () => held.held.length, n);
  assert.equal(again.settled.size, 0, "all admitted once the log acknowledged");
  held.acknowledgeAll();
  for (const answer of again.answers) assert.equal((await answer).status, 202);
  assert.equal(storedIds(held.log, topics.events).length, 2 * admitted * PER_REQUEST);

  const exposition = (await metrics.render()).body;
  assert.match(exposition, new RegExp(`engine_ingest_refused_requests_total ${n - admitted}\\b`));
  assert.match(
    exposition,
    /engine_http_requests_total\{route="\/v1\/events",method="POST",status="429",source="client"\}/,
  );
  assert.match(
    exposition,
    new RegExp(
      `engine_events_ingested_total\\{type="page_viewed",outcome="refused"\\} ${(n - admitted) * PER_REQUEST}\\b`,
    ),
  );
});

Deno.test("the ingestion limit is released when an append fails or times out: 503, then requests are admitted again", async () => {
  const held = new HeldLog();
  const { handle, topics, metrics } = await fixture(held.producer(), held.log);
  const first = await flood(handle, 10, () => held.held.length);
  const admitted = held.held.length;
  assert.ok(admitted > 0 && admitted < 10, `${admitted} of 10 admitted`);
  assert.equal(first.settled.size, 10 - admitted);
  held.failAll(new LogUnavailableError("append not acknowledged within 5000 ms"));
  for (let i = 0; i < 10; i++) {
    const response = await first.answers[i];
    assert.equal(response.status, first.settled.has(i) ? 429 : 503);
    await response.body?.cancel();
  }
  const exposition = (await metrics.render()).body;
  assert.match(
    exposition,
    new RegExp(
      `engine_events_ingested_total\\{type="page_viewed",outcome="unavailable"\\} ${admitted * PER_REQUEST}\\b`,
    ),
  );
  const second = await flood(handle, admitted, () => held.held.length, 10);
  assert.equal(second.settled.size, 0, "the failed appends' bytes were released");
  held.acknowledgeAll();
  for (const answer of second.answers) assert.equal((await answer).status, 202);
  assert.equal(storedIds(held.log, topics.events).length, admitted * PER_REQUEST);
});

Deno.test("a request larger than MAX_INGEST_PENDING_BYTES is admitted alone, never refused for good", async () => {
  const held = new HeldLog();
  const { handle, topics } = await fixture(held.producer(), held.log);
  const big = handle(batch(0, 100));
  await until(() => held.held.length === 1);
  assert.ok(held.held[0].bytes > LIMIT);
  // While it waits, even a small request would pass the limit.
  let small: Response | undefined;
  handle(batch(1, 1)).then((response) => small = response);
  await until(() => small !== undefined || held.held.length > 1);
  await assertRefused(small!);
  held.acknowledgeAll();
  assert.equal((await big).status, 202);
  assert.equal(storedIds(held.log, topics.events).length, 100);
});

Deno.test("a client that goes away keeps its request's bytes counted until the log answers its append", async () => {
  const held = new HeldLog();
  const { handle, topics } = await fixture(held.producer(), held.log);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  try {
    const url = `http://127.0.0.1:${server.addr.port}/v1/events`;
    const aborts: AbortController[] = [];
    const gone: Promise<unknown>[] = [];
    const send = async () => {
      const abort = new AbortController();
      aborts.push(abort);
      const before = held.held.length;
      const request = batch(aborts.length);
      const body = await request.text();
      gone.push(fetch(url, { method: "POST", headers: request.headers, body, signal: abort.signal }));
      await until(() => held.held.length === before + 1);
    };
    await send();
    const admitted = Math.floor(LIMIT / held.held[0].bytes);
    while (aborts.length < admitted) await send();
    for (const abort of aborts) abort.abort();
    await Promise.allSettled(gone);
    // The appends are still with the log: their bytes still count.
    const request = batch(0);
    const body = await request.text();
    const before = held.held.length;
    let refused: Response | undefined;
    fetch(url, { method: "POST", headers: request.headers, body }).then((response) => refused = response);
    await until(() => refused !== undefined || held.held.length > before);
    assert.equal(held.held.length, before, "an aborted request's bytes were released before the log answered");
    assert.equal(refused!.status, 429);
    await refused!.body?.cancel();
    held.acknowledgeAll();
    // Stored although their clients never heard of it (they retry with the same eventIds to stay idempotent).
    assert.equal(storedIds(held.log, topics.events).length, aborts.length * PER_REQUEST);
    const after = fetch(url, { method: "POST", headers: request.headers, body });
    await until(() => held.held.length === 1);
    held.acknowledgeAll();
    assert.equal((await after).status, 202);
    await (await after).body?.cancel();
  } finally {
    // A request still waiting for the log would keep the server from shutting down.
    held.acknowledgeAll();
    await server.shutdown();
  }
});

Deno.test("on the embedded log held by a transaction: 202 within the limit, 429 beyond, released after a timeout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ingest-admission-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const gates = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  try {
    let appendTimeoutMs = 60_000;
    const log = await EmbeddedLog.open(db.sql, { logger: silentLogger, appendTimeoutMs: 60_000 });
    const topics = topicNames({ TOPIC_PREFIX: "" });
    await log.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 3 })));
    let waiting = 0;
    const producer: LogProducer = {
      append: (records) => {
        waiting++;
        return log.append(records, { timeoutMs: appendTimeoutMs }).finally(() => waiting--);
      },
      close: () => log.close(),
    };
    const { handle } = await fixture(producer, null);
    const count = async () => Number((await db.sql`select count(*)::int as n from embedded_log_records`)[0].n);

    // PGlite has one connection: a transaction left open holds every append behind it.
    const holding = db.sql.begin(() => gates[0].promise);
    const n = 12;
    const { answers, settled } = await flood(handle, n, () => waiting);
    const admitted = n - settled.size;
    assert.ok(admitted > 0 && admitted < n, `${admitted} of ${n} admitted`);
    for (const i of settled) await assertRefused(await answers[i]);
    gates[0].resolve();
    await holding;
    await acceptedIds(answers, settled); // each a 202
    assert.equal(await count(), admitted * PER_REQUEST, "every accepted event is in the log, nothing refused is");

    // Held again, with a deadline: the appends answer 503 at it, and their bytes are released then.
    appendTimeoutMs = 50;
    const holding2 = db.sql.begin(() => gates[1].promise);
    const timedOut = await flood(handle, admitted, () => waiting, 100);
    for (const answer of timedOut.answers) assert.equal((await answer).status, 503);
    appendTimeoutMs = 60_000;
    const next = await flood(handle, admitted, () => waiting, 200);
    assert.equal(next.settled.size, 0, "the timed-out appends' bytes were released");
    gates[1].resolve();
    await holding2;
    for (const answer of next.answers) assert.equal((await answer).status, 202);
    await log.close();
  } finally {
    // A transaction left open would keep the database from closing.
    for (const gate of gates) gate.resolve();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request that exactly fills MAX_INGEST_PENDING_BYTES is admitted: only passing it is refused", () => {
  const admission = new IngestAdmission(1_000);
  admission.acquire(600);
  admission.acquire(400);
  assert.equal(admission.pendingBytes, 1_000);
  assert.throws(() => admission.acquire(1), IngestOverloadedError);
  admission.release(400);
  admission.release(600);
  assert.equal(admission.pendingBytes, 0);
});
