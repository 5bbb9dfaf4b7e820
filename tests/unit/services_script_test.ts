import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * The processes of process group `pgid` still alive, as `pid command` lines. A zombie (state Z: exited, not yet reaped
 * by init, which adopted it when its parent exited) is not one: it runs nothing and holds nothing.
 */
async function group(pgid: number): Promise<string[]> {
  const ps = await new Deno.Command("ps", { args: ["-o", "stat=,pid=,args=", "-g", String(pgid)], stdout: "piped" })
    .output();
  return new TextDecoder().decode(ps.stdout).split("\n").map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("Z"))
    .map((line) => line.replace(/^\S+\s+/, ""));
}

/** Both variables set: services.sh starts nothing and only runs or waits, so these tests need no Kafka nor PostgreSQL. */
const NO_SERVICES = { KAFKA_BROKERS: "127.0.0.1:9", DATABASE_URL: "postgres://u@127.0.0.1:9/db" };

/**
 * Starts `bash scripts/services.sh <args>` (under `setsid` with `ownGroup`, as a terminal's foreground job is) and reads
 * `output` until it holds `marker`; `rest()` reads it to its end.
 */
async function startScript(args: string[], output: "stdout" | "stderr", marker: string, ownGroup = false) {
  const script = ["bash", "scripts/services.sh", ...args];
  const child = new Deno.Command(ownGroup ? "setsid" : script[0], {
    args: ownGroup ? script : script.slice(1),
    cwd: ROOT,
    env: NO_SERVICES,
    stdin: "null",
    stdout: output === "stdout" ? "piped" : "null",
    stderr: output === "stderr" ? "piped" : "null",
  }).spawn();
  const reader = child[output].pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const rest = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += value;
    }
  };
  return { child, pgid: child.pid, text, reader, rest };
}

/** The processes left in group `pgid`, then SIGKILLs them (not to leave them behind on a failure). */
async function leftAfter(pgid: number): Promise<string[]> {
  const left = await group(pgid);
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch {
    // none left
  }
  return left;
}

Deno.test("services.sh up stopped by Ctrl-C (SIGINT to its process group) leaves no process behind", async () => {
  // `up` only waits; its own process group, as a terminal's foreground job is.
  const { child, pgid, text, reader } = await startScript(["up"], "stderr", "press Ctrl-C", true);
  assert.match(text, /running; press Ctrl-C/);
  Deno.kill(-pgid, "SIGINT");
  await child.status;
  await reader.cancel();
  // A `sleep 3600` the script waited on ignored the SIGINT (a background job of a non-interactive shell) and
  // stayed for up to an hour after every `deno task services`.
  assert.deepEqual(await leftAfter(pgid), []);
});

Deno.test("services.sh run stopped by SIGTERM stops its command first, instead of waiting for it to end", async () => {
  // The command says when it runs, and how it ended: stopped by SIGTERM, or on its own after 20 s.
  const command =
    'trap \'kill "$s"; echo terminated; exit 143\' TERM; echo started; sleep 20 & s=$!; wait "$s"; echo finished';
  const { child, rest } = await startScript(["run", "bash", "-c", command], "stdout", "started");
  child.kill("SIGTERM"); // a CI job cancelled, `kill` of the script: the script alone gets the signal
  const stdout = await rest();
  const status = await child.status;
  // Bash ran no trap while its command ran in the foreground: the command ran to its end (for ever, if it hung) and
  // Kafka and PostgreSQL with it.
  assert.deepEqual(stdout.trim().split("\n"), ["started", "terminated"]);
  assert.equal(status.code, 143);
});

Deno.test("services.sh run stopped by Ctrl-C (SIGINT to its process group) stops its command and leaves no process", async () => {
  const { child, pgid, reader } = await startScript(
    ["run", "bash", "-c", "echo started; exec sleep 20"],
    "stdout",
    "started",
    true,
  );
  Deno.kill(-pgid, "SIGINT");
  const status = await child.status;
  await reader.cancel();
  const left = await leftAfter(pgid);
  assert.equal(status.code, 130);
  assert.deepEqual(left, []);
});

Deno.test("services.sh run leaves its command SIGINT and SIGQUIT as in the foreground, so that it hears Ctrl-C", async () => {
  const output = await new Deno.Command("bash", {
    args: ["scripts/services.sh", "run", "grep", "SigIgn", "/proc/self/status"],
    cwd: ROOT,
    env: NO_SERVICES,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const ignored = BigInt(`0x${new TextDecoder().decode(output.stdout).replace("SigIgn:", "").trim()}`);
  // Bits 1 and 2: signals 2 (SIGINT) and 3 (SIGQUIT). A background job of bash ignores both, and so does everything
  // it starts (deno test, the tools and engines the tests spawn).
  assert.equal(ignored & 0b110n, 0n, `ignored signals: ${ignored.toString(16)}`);
});
