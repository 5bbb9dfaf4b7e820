import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs `deno run -A main.ts` in embedded mode with `env`; its exit code and stderr once it ends. */
async function runMain(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const inherited = Deno.env.toObject();
  for (const name of ["KAFKA_BROKERS", "DATABASE_URL", "PORT", "HOST", "DATA_DIR", "LOG_LEVEL"]) delete inherited[name];
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: ROOT,
    env: { ...inherited, PORT: "0", HOST: "127.0.0.1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
}

Deno.test("main.ts: a bad DATA_DIR found by the engine exits 2 with a plain-text message, as a bad setting does", async () => {
  const parent = await Deno.makeTempDir({ prefix: "main-config-error-" });
  try {
    const file = `${parent}/not-a-directory`;
    await Deno.writeTextFile(file, "");
    const cases: [Record<string, string>, RegExp][] = [
      // The configuration itself: the reference behaviour.
      [{ DATA_DIR: file, PORT: "eighty" }, /^Cannot start: invalid configuration: PORT="eighty"/],
      // Found only by startEngine: was a JSON log line and exit code 1.
      [{ DATA_DIR: file }, /^Cannot create DATA_DIR: current value is ".*not-a-directory"/],
    ];
    if (Deno.build.os === "linux") {
      cases.push([
        { DATA_DIR: "/proc/sys" },
        /^Cannot create the lock file engine\.lock in DATA_DIR: current value is "\/proc\/sys"/,
      ]);
    }
    const results = await Promise.all(cases.map(([env]) => runMain(env)));
    for (const [index, [, message]] of cases.entries()) {
      const { code, stderr } = results[index];
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.ok(!stderr.trimStart().startsWith("{"), `a JSON log line: ${stderr}`);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
