/**
 * The Docker image's HEALTHCHECK: `deno run -A scripts/healthcheck.ts` exits 0 when the engine in this
 * container answers GET /healthz, 1 otherwise. It reads PORT and HOST as the engine does (engine/config.ts):
 * a probe of 127.0.0.1 with PORT as written failed on a PORT with spaces around it and on a HOST bound to
 * one address, and marked a healthy engine unhealthy.
 */
import type { Config } from "../engine/config.ts";
import { loadConfig } from "../engine/config.ts";

/** Where the engine bound by `HOST` and `PORT` answers from inside its own container. */
export function healthzUrl(config: Pick<Config, "HOST" | "PORT">): string {
  const host = config.HOST === "0.0.0.0" ? "127.0.0.1" : config.HOST === "::" ? "[::1]" : config.HOST;
  return `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${config.PORT}/healthz`;
}

/** Exit code of the probe: 0 healthy, 1 not (a bad setting, no answer, or an answer other than 2xx). */
async function probe(): Promise<number> {
  let url: string;
  try {
    url = healthzUrl(loadConfig());
    bypassProxy(new URL(url).hostname);
    const response = await fetch(url, { signal: AbortSignal.timeout(4000) });
    await response.body?.cancel();
    if (response.ok) return 0;
    await report(`healthcheck: ${url} answered ${response.status}`);
  } catch (error) {
    await report(`healthcheck: ${(error as Error).message}`);
  }
  return 1;
}

/**
 * Adds the probed host to NO_PROXY: Deno's fetch honours HTTP_PROXY, which Docker's proxy settings put in a
 * container's environment, and a proxy cannot reach the container's own loopback (an up engine read as unhealthy).
 */
function bypassProxy(hostname: string): void {
  const hosts = [Deno.env.get("NO_PROXY") ?? Deno.env.get("no_proxy"), hostname, hostname.replace(/^\[|\]$/g, "")];
  Deno.env.set("NO_PROXY", hosts.filter(Boolean).join(","));
}

/** One line on stderr, which Docker keeps in the container's health log. */
async function report(line: string): Promise<void> {
  await Deno.stderr.write(new TextEncoder().encode(`${line}\n`));
}

if (import.meta.main) Deno.exit(await probe());
