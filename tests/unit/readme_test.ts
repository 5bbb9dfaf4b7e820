import assert from "node:assert/strict";
import { SETTING_NAMES } from "../../engine/config.ts";

const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

Deno.test("README documents every configuration setting in a table row", () => {
  const missing = SETTING_NAMES.filter((name) => !new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, "m").test(readme));
  assert.deepEqual(missing, []);
});

Deno.test("README's two set-up commands are the tasks deno.json defines, and .ci/run calls the test one", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).tasks;
  assert.match(readme, /deno task start/);
  assert.match(readme, /deno task test/);
  assert.ok(tasks.start && tasks.test);
  const ci = await Deno.readTextFile(new URL("../../.ci/run", import.meta.url));
  assert.match(ci, /^deno task test$/m);
});
