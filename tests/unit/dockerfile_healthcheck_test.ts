/**
 * The Dockerfile's HEALTHCHECK, run as Docker runs it (its exec form, in the image's working directory)
 * against a server bound the way the engine binds HOST and PORT: there is no Docker engine here.
 */
import assert from "node:assert/strict";
import { healthzUrl } from "../../scripts/healthcheck.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The HEALTHCHECK's command, in exec form, with `deno` as this test's Deno. */
async function healthcheckCommand(): Promise<string[]> {
  const dockerfile = (await Deno.readTextFile(`${ROOT}Dockerfile`)).replaceAll("\\\n", " ");
  const line = dockerfile.split("\n").find((l) => l.startsWith("HEALTHCHECK "));
  assert.ok(line, "no HEALTHCHECK in the Dockerfile");
  const command = JSON.parse(line.slice(line.indexOf(" CMD ") + 5).trim()) as string[];
  assert.equal(command[0], "deno");
  return [Deno.execPath(), ...command.slice(1)];
}

/** Runs the HEALTHCHECK with `env` over the test's environment (production variables removed); its exit code. */
async function runHealthcheck(env: Record<string, string>): Promise<number> {
  const [command, ...args] = await healthcheckCommand();
  const base = Deno.env.toObject();
  delete base.KAFKA_BROKERS;
  delete base.DATABASE_URL;
  const output = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env: { ...base, ...env },
    clearEnv: true,
    stdin: "null",
  }).output();
  return output.code;
}

/** A stand-in engine answering /healthz on `hostname`. */
function serveHealthz(hostname: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname, port: 0, onListen: () => {} }, () => Response.json({ status: "ok" }));
}

Deno.test("healthcheck: probes the address HOST binds, with PORT read as the engine reads it", async () => {
  const server = serveHealthz("127.0.0.2");
  try {
    // HOST bound to one address (not loopback's 127.0.0.1) and PORT with spaces, both valid for the engine.
    assert.equal(await runHealthcheck({ HOST: "127.0.0.2", PORT: ` ${server.addr.port} ` }), 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("healthcheck: the default HOST is probed on loopback", async () => {
  const server = serveHealthz("0.0.0.0");
  try {
    assert.equal(await runHealthcheck({ PORT: String(server.addr.port) }), 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("healthcheck: an HTTP_PROXY in the container's environment is not used for the engine's own address", async () => {
  const closed = serveHealthz("127.0.0.1");
  const proxyPort = closed.addr.port;
  await closed.shutdown();
  for (const hostname of ["127.0.0.1", "::1"]) {
    const server = serveHealthz(hostname);
    try {
      const proxy = `http://127.0.0.1:${proxyPort}`;
      const env = { HOST: hostname, PORT: String(server.addr.port), HTTP_PROXY: proxy, http_proxy: proxy };
      assert.equal(await runHealthcheck({ ...env, NO_PROXY: "example.com" }), 0, hostname);
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("healthcheck: an engine that does not answer is unhealthy", async () => {
  const server = serveHealthz("127.0.0.1");
  const port = server.addr.port;
  await server.shutdown();
  assert.equal(await runHealthcheck({ HOST: "127.0.0.1", PORT: String(port) }), 1);
});

Deno.test("healthcheck: the probe's URL for each kind of HOST", () => {
  assert.equal(healthzUrl({ HOST: "0.0.0.0", PORT: 8080 }), "http://127.0.0.1:8080/healthz");
  assert.equal(healthzUrl({ HOST: "::", PORT: 8080 }), "http://[::1]:8080/healthz");
  assert.equal(healthzUrl({ HOST: "::1", PORT: 81 }), "http://[::1]:81/healthz");
  assert.equal(healthzUrl({ HOST: "10.0.0.5", PORT: 8080 }), "http://10.0.0.5:8080/healthz");
  assert.equal(healthzUrl({ HOST: "localhost", PORT: 8080 }), "http://localhost:8080/healthz");
});

Deno.test("healthcheck: the image caches the script its HEALTHCHECK runs", async () => {
  const dockerfile = await Deno.readTextFile(`${ROOT}Dockerfile`);
  const script = (await healthcheckCommand()).find((arg) => arg.startsWith("scripts/"));
  assert.ok(script, "the HEALTHCHECK runs no script");
  assert.match(dockerfile, new RegExp(`^RUN deno cache --frozen .*${script}`, "m"));
});
