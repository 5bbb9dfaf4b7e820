import assert from "node:assert/strict";
import { badUrlMessage, engineBaseUrl } from "../../scripts/engine_url.ts";

Deno.test("engineBaseUrl takes http(s) URLs without their trailing slashes and refuses anything else", () => {
  assert.equal(engineBaseUrl("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
  assert.equal(engineBaseUrl("https://engine.example//"), "https://engine.example");
  assert.equal(engineBaseUrl("http://engine.example/base"), "http://engine.example/base");
  for (const bad of ["ftp://engine.example", "127.0.0.1:8080", "localhost", "", "http//x"]) {
    assert.equal(engineBaseUrl(bad), null, bad);
  }
});

Deno.test("engineBaseUrl refuses a query or fragment, which the tools' paths would land inside", () => {
  // "http://127.0.0.1:8080?x=1" + "/v1/events" asked for "/" with the query "x=1/v1/events": every request went astray,
  // refused as a 404 (tail, import) or counted as rejected (loadgen), the URL itself never named.
  for (const bad of ["http://127.0.0.1:8080?x=1", "http://127.0.0.1:8080/?", "http://127.0.0.1:8080/#top"]) {
    assert.equal(engineBaseUrl(bad), null, bad);
  }
  assert.match(badUrlMessage("http://h?x=1"), /without a query or fragment/);
});

/** Runs one tool with a bad --url and returns its exit code and stderr. */
async function refuse(script: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`../../scripts/${script}`, import.meta.url).pathname, ...args],
    stdout: "null",
    stderr: "piped",
    env: { KAFKA_BROKERS: "" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("loadgen, import and tail refuse a --url that is not http(s), naming it, with exit code 2", async () => {
  const runs: [string, string[]][] = [
    ["loadgen.ts", ["--url", "ftp://x"]],
    ["import.ts", ["rees46", "some.csv", "--url", "ftp://x"]],
    ["tail.ts", ["alerts", "--url=ftp://x"]],
  ];
  for (const [script, args] of runs) {
    const { code, stderr } = await refuse(script, args);
    assert.equal(code, 2, `${script}: ${stderr}`);
    assert.ok(stderr.includes(badUrlMessage("ftp://x")), `${script}: ${stderr}`);
  }
});
