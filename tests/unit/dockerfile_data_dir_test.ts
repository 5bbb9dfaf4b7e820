/**
 * The image keeps an embedded engine's data (its log and PGlite database under DATA_DIR) outside the
 * container's writable layer: without a VOLUME, `docker rm` or a rebuilt container lost every accepted event.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Instructions of the final stage, continuation lines joined. */
async function instructions(): Promise<string[]> {
  const text = (await Deno.readTextFile(`${ROOT}Dockerfile`)).replaceAll("\\\n", " ");
  return text.split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
}

Deno.test("dockerfile: DATA_DIR is declared a volume, after the directory is made and owned by the engine's user", async () => {
  const lines = await instructions();
  const env = lines.filter((line) => line.startsWith("ENV ")).join(" ");
  const dataDir = env.match(/DATA_DIR=(\S+)/)?.[1];
  assert.ok(dataDir, "the image sets no DATA_DIR");
  const volume = lines.findIndex((line) => line.startsWith("VOLUME "));
  assert.ok(volume >= 0, "the image declares no VOLUME");
  const declared = lines[volume].slice("VOLUME ".length).trim();
  const paths = declared.startsWith("[") ? JSON.parse(declared) as string[] : declared.split(/\s+/);
  assert.ok(paths.includes(dataDir), `VOLUME ${declared} does not include DATA_DIR ${dataDir}`);
  // Docker discards what build steps write under a volume after its declaration, and a new named volume
  // copies the image's directory (and its owner) only if the directory exists when VOLUME is declared.
  const made = lines.findIndex((line) => line.startsWith("RUN ") && line.includes(`mkdir -p ${dataDir}`));
  assert.ok(made >= 0 && made < volume, `${dataDir} is not made before the VOLUME`);
  assert.ok(lines.slice(volume + 1).every((line) => !(line.startsWith("RUN ") && line.includes(dataDir))));
});
