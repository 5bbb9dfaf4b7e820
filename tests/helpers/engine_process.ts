/**
 * Runs the engine as a separate process (`deno run -A main.ts`), the way users run it, so that
 * tests can kill it with SIGKILL, restart it on the same DATA_DIR, or start a second one beside it.
 * By default the process is in embedded mode: KAFKA_BROKERS and DATABASE_URL, which
 * scripts/services.sh exports, are removed from its environment.
 */
import { eventually } from "./services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/**
 * Bounds the wait for /readyz, which ends as soon as it answers 200 or the process exits: generous, because a first
 * embedded start (PGlite's WASM, its template unpacked, the migrations checked) took 14.6 s beside two busy loops, and
 * more than 30 s (the bound before) with two test files running beside it under `--parallel`.
 */
const READY_TIMEOUT_MS = 120_000;
const READY_POLL_MS = 25;

/** A free loopback TCP port (the OS picks one; it is released before it is returned). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** How to start an engine process. */
export interface EngineProcessOptions {
  readonly dataDir: string;
  /** Defaults to a free port. */
  readonly port?: number;
  /** Extra environment variables (configuration). */
  readonly env?: Record<string, string>;
  /** The checkout whose main.ts runs (an older release's worktree, for an upgrade drill); defaults to this one. */
  readonly root?: string;
}

/** A running (or exited) engine process. */
export interface EngineProcess {
  readonly url: string;
  readonly pid: number;
  /** Resolves with the exit code once the process ended. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Everything the process wrote to stderr so far (its JSON logs). */
  logs(): string;
  /** Sends a signal and waits for the process to end. */
  kill(signal: "SIGKILL" | "SIGTERM"): Promise<Deno.CommandStatus>;
  /**
   * Sends SIGKILL as soon as the process writes a log line `matches` accepts (from the pipe's reader, with no timer
   * between), and resolves with that line: a kill aimed at a moment only a log line shows (a checkpoint in progress).
   */
  killOnLog(matches: (line: string) => boolean): Promise<string>;
}

/** Spawns the engine; does not wait for it to serve (see `waitReady`). */
export function spawnEngine(options: EngineProcessOptions): EngineProcess {
  const port = options.port ?? freePort();
  const env = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "PORT", "HOST", "DATA_DIR"]) delete env[name];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: options.root ?? ROOT,
    env: {
      ...env,
      DATA_DIR: options.dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      ...options.env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  /** Where the line being written starts in `stderr`. */
  let lineStart = 0;
  let aim: { matches: (line: string) => boolean; hit: PromiseWithResolvers<string> } | undefined;
  const decoder = new TextDecoder();
  const drained = child.stderr.pipeTo(
    new WritableStream({
      write: (chunk) => {
        stderr += decoder.decode(chunk, { stream: true });
        const end = stderr.lastIndexOf("\n");
        if (end < lineStart) return;
        const lines = stderr.slice(lineStart, end);
        lineStart = end + 1;
        const line = aim && lines.split("\n").find((l) => aim!.matches(l));
        if (!aim || line === undefined) return;
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        aim.hit.resolve(line);
        aim = undefined;
      },
    }),
  ).catch(() => {});
  const exited = child.status.then(async (status) => {
    await drained;
    aim?.hit.reject(
      new Error(`the engine exited (${JSON.stringify(status)}) before a log line matched`),
    );
    return status;
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    exited,
    logs: () => stderr,
    async kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      return await exited;
    },
    killOnLog(matches) {
      aim?.hit.reject(new Error("another kill was aimed"));
      aim = { matches, hit: Promise.withResolvers<string>() };
      return aim.hit.promise;
    },
  };
}

/**
 * Waits until the engine is ready (/readyz 200: it serves HTTP from early in its start-up, answering 503
 * until then); throws with its logs if it exits or takes too long.
 */
export async function waitReady(engine: EngineProcess, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  let exited: Deno.CommandStatus | undefined;
  engine.exited.then((status) => exited = status);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`engine exited with code ${exited.code} before it was ready:\n${engine.logs()}`);
    try {
      const response = await fetch(`${engine.url}/readyz`);
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
  await engine.kill("SIGKILL");
  throw new Error(`engine was not ready within ${timeoutMs} ms:\n${engine.logs()}`);
}

/** Spawns the engine and waits until it is ready. */
export async function startEngineProcess(options: EngineProcessOptions): Promise<EngineProcess> {
  const engine = spawnEngine(options);
  await waitReady(engine);
  return engine;
}

/** Posts one page view for each of `users` users (u0, u1, …) and waits until u7's state answers: the engine is at work. */
export async function postPageViewsHandled(engine: EngineProcess, users = 30): Promise<void> {
  const posted = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(
      Array.from({ length: users }, (_, i) => ({ type: "page_viewed", userId: `u${i}`, properties: { url: "/" } })),
    ),
  });
  if (posted.status !== 202) throw new Error(`POST /v1/events answered ${posted.status}: ${await posted.text()}`);
  await posted.body?.cancel();
  await eventually("the events handled", async () => {
    const response = await fetch(`${engine.url}/v1/users/u7`);
    await response.body?.cancel();
    return response.status === 200 ? true : undefined;
  });
}
