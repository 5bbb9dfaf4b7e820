/**
 * A machine-wide copy of a freshly initialised PGlite data directory. PGlite initialises an empty
 * directory by running initdb in WebAssembly (~2.5 s on the machines we measured); unpacking a
 * saved copy takes ~0.3 s. The first initialisation on a machine saves the copy, every later start
 * on an empty DATA_DIR unpacks it. The copy holds no engine data (it is taken before migrations)
 * and is keyed by the PGlite build, so an upgrade never unpacks a directory made by another one.
 */
import type { PGlite } from "@electric-sql/pglite";
import type { Logger } from "./logger.ts";

/** Default folder for templates: the project's git-ignored cache, next to the engine's source. */
export const DEFAULT_TEMPLATE_DIR = new URL("../.cache/pglite-template/", import.meta.url).pathname;

/** Where the template for the PGlite build this process loaded lives inside `dir`. */
export async function templatePath(dir: string): Promise<string> {
  const build = import.meta.resolve("@electric-sql/pglite");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(build));
  const key = Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${dir.replace(/\/$/, "")}/pgdata-${key}.tar.gz`;
}

/**
 * The saved template as an uncompressed tar, or undefined when there is none (or it cannot be read or
 * unpacked: the caller initialises from scratch and saves a new one). Unpacked here rather than by PGlite:
 * PGlite 0.5.16 leaves the promise of its gunzip stream unhandled, so a template cut short (its gzip
 * checksum fails) ended the process with an uncaught rejection instead of falling back to initdb.
 */
export async function readTemplate(path: string, log: Logger): Promise<Blob | undefined> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) log.warn("cannot read the PGlite template", { path, error });
    return undefined;
  }
  try {
    const tar = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Blob([await new Response(tar).arrayBuffer()], { type: "application/x-tar" });
  } catch (error) {
    log.warn("the PGlite template is damaged; initialising from scratch and replacing it", { path, error });
    return undefined;
  }
}

/**
 * Saves `db`'s data directory as the template. Called right after initialisation, before anything
 * is written to it. Written to a temporary name and renamed, so a reader never sees half a file;
 * failures are logged and ignored, since the template only saves time.
 */
export async function saveTemplate(db: PGlite, path: string, log: Logger): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    const dump = await db.dumpDataDir("gzip");
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(temporary, new Uint8Array(await dump.arrayBuffer()));
    await Deno.rename(temporary, path);
    log.debug("saved a PGlite template", { path, bytes: dump.size });
  } catch (error) {
    log.warn("cannot save the PGlite template; the next empty DATA_DIR will be initialised from scratch", {
      path,
      error,
    });
    await Deno.remove(temporary).catch(() => {});
  }
}
