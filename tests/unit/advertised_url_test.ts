/** The address an instance registers for query routing: ADVERTISED_URL first, else the bound address. */
import assert from "node:assert/strict";
import { advertisedUrl } from "../../engine/advertised_url.ts";

const bound = (hostname: string, port = 8080): Deno.NetAddr => ({ transport: "tcp", hostname, port });
const hostname = () => "pod-7";

Deno.test("ADVERTISED_URL wins over the bound address, even a wildcard one", () => {
  for (const addr of [bound("0.0.0.0"), bound("127.0.0.1", 9001), bound("::")]) {
    assert.equal(advertisedUrl({ configured: "http://engine-1:8080", bound: addr, hostname }), "http://engine-1:8080");
  }
});

Deno.test("without ADVERTISED_URL: the bound address, with the host name in place of a wildcard", () => {
  assert.equal(advertisedUrl({ bound: bound("0.0.0.0", 8080), hostname }), "http://pod-7:8080");
  assert.equal(advertisedUrl({ bound: bound("::", 8081), hostname }), "http://pod-7:8081");
  assert.equal(advertisedUrl({ bound: bound("127.0.0.1", 9001), hostname }), "http://127.0.0.1:9001");
  assert.equal(advertisedUrl({ bound: bound("::1", 9001), hostname }), "http://[::1]:9001");
});
