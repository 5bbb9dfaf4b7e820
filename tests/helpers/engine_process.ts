/**
 * Runs the engine as a separate process (`deno run -A main.ts`), the way users run it, so that
 * tests can kill it with SIGKILL, restart it on the same DATA_DIR, or start a second one beside it.
 * By default the process is in embedded mode: KAFKA_BROKERS and DATABASE_URL, which
 * scripts/services.sh exports, are removed from its environment.
 */

const ROOT = new URL("../../", import.meta.url).pathname;
const READY_TIMEOUT_MS = 30_000;
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
}

/** Spawns the engine; does not wait for it to serve (see `waitReady`). */
export function spawnEngine(options: EngineProcessOptions): EngineProcess {
  const port = options.port ?? freePort();
  const env = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "PORT", "HOST", "DATA_DIR"]) delete env[name];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: ROOT,
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
  const decoder = new TextDecoder();
  const drained = child.stderr.pipeTo(
    new WritableStream({ write: (chunk) => void (stderr += decoder.decode(chunk, { stream: true })) }),
  ).catch(() => {});
  const exited = child.status.then(async (status) => {
    await drained;
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
