/** Further engine instances for the benchmarks: real processes (`deno run -A main.ts`) joining the same group. */
import type { Config } from "../engine/config.ts";

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** An engine process started by a benchmark. */
export interface Instance {
  readonly pid: number;
  /** CPU seconds (user + system) the process has used so far; NaN where /proc is unreadable. */
  cpuSeconds(): number;
  /** Stops it with SIGTERM (a final checkpoint, as in production) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts an engine process with `config`'s Kafka, database, topics and group, plus `env` settings. */
export function spawnInstance(config: Config, env: Record<string, string> = {}): Instance {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: new URL("../", import.meta.url).pathname,
    env: {
      KAFKA_BROKERS: config.KAFKA_BROKERS!,
      DATABASE_URL: config.DATABASE_URL!,
      TOPIC_PREFIX: config.TOPIC_PREFIX,
      GROUP_ID: config.GROUP_ID,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    pid: child.pid,
    cpuSeconds() {
      try {
        // Fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime the 13th.
        const stat = Deno.readTextFileSync(`/proc/${child.pid}/stat`);
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
      } catch {
        return NaN;
      }
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      await child.status;
    },
  };
}
