// deno-lint-ignore-file no-console
/**
 * Open-loop load at a fixed rate, from a Web Worker (its own thread, like a separate client):
 * requests go out on schedule whatever the server does (never waiting for earlier answers), so a
 * slow server meets the full rate and its queueing shows in the latencies. Latency runs from the
 * moment a request is handed to fetch; the generator's own lateness against the schedule (its
 * timer ticks about every millisecond) is reported apart as the send lag, so that it is neither
 * hidden nor charged to the server.
 */

/** One request of the load. */
export interface LoadRequest {
  readonly url: string;
  readonly method?: "GET" | "POST";
  readonly body?: string;
}

/** A fixed-rate run. */
export interface FixedRateJob {
  readonly requests: readonly LoadRequest[];
  readonly rate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/** What a run measured (warm-up excluded). */
export interface FixedRateResult {
  readonly sent: number;
  readonly seconds: number;
  readonly statuses: Record<string, number>;
  readonly latenciesMs: number[];
  /** How late each request went out against its schedule (the generator's own jitter). */
  readonly sendLagsMs: number[];
}

const MS_PER_S = 1_000;
const TICK_MS = 1;

/** Runs `job` in a worker and returns its measurements. */
export function runFixedRate(job: FixedRateJob): Promise<FixedRateResult> {
  const worker = new Worker(import.meta.url, { type: "module" });
  const { promise, resolve, reject } = Promise.withResolvers<FixedRateResult>();
  worker.onmessage = (message: MessageEvent<FixedRateResult>) => resolve(message.data);
  worker.onerror = (error) => {
    error.preventDefault();
    reject(new Error(error.message));
  };
  worker.postMessage(job);
  return promise.finally(() => worker.terminate());
}

/** The value at percentile `p` (0–100) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Prints a one-paragraph summary of a run. */
export function printResult(title: string, result: FixedRateResult): void {
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  const ms = (p: number) => percentile(sorted, p).toFixed(2);
  console.log(`${title}: ${result.sent} requests in ${result.seconds.toFixed(1)} s`);
  console.log(`  latency ms: p50 ${ms(50)}  p90 ${ms(90)}  p99 ${ms(99)}  max ${ms(100)}`);
  const lags = [...result.sendLagsMs].sort((a, b) => a - b);
  console.log(
    `  send lag ms (generator, not in the latency): p50 ${percentile(lags, 50).toFixed(2)}  p99 ${
      percentile(lags, 99).toFixed(2)
    }`,
  );
  console.log(`  statuses: ${Object.entries(result.statuses).map(([s, n]) => `${s} ×${n}`).join(", ")}`);
}

async function fixedRate(job: FixedRateJob): Promise<FixedRateResult> {
  const intervalMs = MS_PER_S / job.rate;
  const warmup = Math.round((job.rate * job.warmupMs) / MS_PER_S);
  const total = warmup + Math.round((job.rate * job.durationMs) / MS_PER_S);
  const result: { -readonly [K in keyof FixedRateResult]: FixedRateResult[K] } = {
    sent: 0,
    seconds: 0,
    statuses: {},
    latenciesMs: [],
    sendLagsMs: [],
  };
  const start = performance.now() + intervalMs;
  const inFlight: Promise<void>[] = [];
  let next = 0;
  while (next < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
    for (; next < due; next++) {
      const scheduled = start + next * intervalMs;
      const measured = next >= warmup;
      const request = job.requests[next % job.requests.length];
      inFlight.push((async () => {
        let status: string;
        const sent = performance.now();
        try {
          const response = await fetch(request.url, {
            method: request.method ?? "GET",
            body: request.body,
            headers: request.body ? { "content-type": "application/json" } : {},
          });
          await response.arrayBuffer();
          status = String(response.status);
        } catch (error) {
          status = (error as Error).name;
        }
        if (!measured) return;
        result.sent++;
        result.statuses[status] = (result.statuses[status] ?? 0) + 1;
        result.latenciesMs.push(performance.now() - sent);
        result.sendLagsMs.push(sent - scheduled);
      })());
    }
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  await Promise.all(inFlight);
  result.seconds = (performance.now() - start - warmup * intervalMs) / MS_PER_S;
  return result;
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as {
    onmessage: ((message: MessageEvent<FixedRateJob>) => void) | null;
    postMessage(message: FixedRateResult): void;
  };
  scope.onmessage = async (message) => scope.postMessage(await fixedRate(message.data));
}
