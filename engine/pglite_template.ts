/**
 * A machine-wide copy of a freshly initialised PGlite data directory. PGlite initialises an empty
 * directory by running initdb in WebAssembly (~3 s on the machines we measured); opening a fresh database
 * by copying a saved one (39 MB, 971 files: 0.4–0.8 s of it under load, as `cp -r`) took 0.7–1.6 s (median
 * 0.8 s), where unpacking the gzipped tarball this used to be took 0.9–2.3 s (median 1.2 s), load 3–5.
 * The first initialisation on a machine saves the copy, every later start on an empty DATA_DIR copies it. The copy holds no engine data (it is taken before migrations) and is keyed by the
 * PGlite build, so an upgrade never copies a directory made by another one.
 */
import type { Logger } from "./logger.ts";
import { EngineError } from "./errors.ts";
import { pathExists } from "./path_exists.ts";

/** Default folder for templates: the project's git-ignored cache, next to the engine's source. */
export const DEFAULT_TEMPLATE_DIR = new URL("../.cache/pglite-template/", import.meta.url).pathname;

/** The template's own record of what it holds (left out of copies): a copy that differs from it is incomplete. */
const MANIFEST_FILE = "pglite-template.json";
/** Files copied at once: enough to keep the disk busy, few enough to stay far from the open-files limit. */
const COPY_CONCURRENCY = 16;

/** What a template holds, counted when it is saved and again when it is copied. */
export interface Manifest {
  readonly files: number;
  readonly bytes: number;
}

/** The template cannot be used (PG_VERSION or its manifest missing, a file missing or cut short): it is replaced. */
export class TemplateDamagedError extends EngineError {
  readonly code = "pglite_template_damaged";
}

/** Where the template (a data directory) for the PGlite build this process loaded lives inside `dir`. */
export async function templatePath(dir: string): Promise<string> {
  const build = import.meta.resolve("@electric-sql/pglite");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(build));
  const key = Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${dir.replace(/\/$/, "")}/pgdata-${key}`;
}

/**
 * Copies the template at `path` to `target` (which must not exist) through `staging`, a scratch name beside `target`
 * renamed into place once the copy is whole, so that an interrupted copy is never taken for a database. Returns false
 * when there is no template, or when it is damaged: then it is deleted (the caller initialises from scratch and saves
 * a new one) and nothing is left at `target`.
 */
export async function copyTemplate(path: string, target: string, staging: string, log: Logger): Promise<boolean> {
  let manifest: Manifest;
  try {
    manifest = await readManifest(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !(await pathExists(path))) return false;
    log.warn("the PGlite template is damaged; deleting it and initialising from scratch", { path, error });
    await discardTemplate(path);
    return false;
  }
  try {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    const copied = await copyTree(path, staging, { skip: MANIFEST_FILE });
    if (copied.files !== manifest.files || copied.bytes !== manifest.bytes) {
      throw new TemplateDamagedError(
        `the template holds ${copied.files} files of ${copied.bytes} bytes, its manifest ${manifest.files} of ` +
          `${manifest.bytes}`,
      );
    }
    await Deno.rename(staging, target);
    return true;
  } catch (error) {
    log.warn("cannot copy the PGlite template; deleting it and initialising from scratch", { path, error });
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await discardTemplate(path);
    return false;
  }
}

/**
 * Saves `pgdata`, a data directory PGlite initialised and closed cleanly, as the template: copied to a temporary
 * sibling of `path` and renamed, so that a reader never sees half a template; when another process saved one first,
 * ours is dropped. Failures are logged and ignored, since the template only saves time.
 */
export async function saveTemplate(pgdata: string, path: string, log: Logger): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    // PGlite creates its files writable by everyone (0666): the template, which every later database starts from,
    // is kept writable by its owner only.
    const manifest = await copyTree(pgdata, temporary, { modeMask: 0o755 });
    await Deno.writeTextFile(`${temporary}/${MANIFEST_FILE}`, JSON.stringify(manifest) + "\n");
    try {
      await Deno.rename(temporary, path);
    } catch (error) {
      // rename(2) does not replace a directory that holds files: another process saved the template first.
      if (await pathExists(`${path}/${MANIFEST_FILE}`)) {
        log.debug("another process saved the PGlite template first; dropping ours", { path });
        await Deno.remove(temporary, { recursive: true });
        return;
      }
      throw error;
    }
    // The gzipped tarball earlier versions saved beside it is never read again.
    await Deno.remove(`${path}.tar.gz`).catch(() => {});
    log.debug("saved a PGlite template", { path, ...manifest });
  } catch (error) {
    log.warn("cannot save the PGlite template; the next empty DATA_DIR will be initialised from scratch", {
      path,
      error,
    });
    await Deno.remove(temporary, { recursive: true }).catch(() => {});
  }
}

/**
 * Deletes a damaged template: renamed out of the way first (atomic), so that a process copying it at that moment
 * fails instead of copying part of it, then removed; best effort, since it only saves time.
 */
export async function discardTemplate(path: string): Promise<void> {
  const doomed = `${path}.${crypto.randomUUID()}.damaged`;
  try {
    await Deno.rename(path, doomed);
  } catch {
    return;
  }
  await Deno.remove(doomed, { recursive: true }).catch(() => {});
}

/** The manifest of the template at `path`, which must also hold PG_VERSION (PGlite runs initdb where there is none). */
export async function readManifest(path: string): Promise<Manifest> {
  const text = await Deno.readTextFile(`${path}/${MANIFEST_FILE}`);
  await Deno.stat(`${path}/PG_VERSION`);
  const parsed: unknown = JSON.parse(text);
  const { files, bytes } = (parsed ?? {}) as Partial<Manifest>;
  if (!Number.isSafeInteger(files) || !Number.isSafeInteger(bytes)) {
    throw new TemplateDamagedError(`${MANIFEST_FILE} holds no counts of files and bytes: ${text.slice(0, 200)}`);
  }
  return { files: files!, bytes: bytes! };
}

/**
 * Copies the directory tree `from` to `to` (which must not exist), leaving out `skip` at its top and clearing the
 * permission bits outside `modeMask`, and counts the files and bytes it wrote. A data directory holds only files and
 * directories; anything else is refused.
 */
async function copyTree(
  from: string,
  to: string,
  { skip, modeMask = 0o777 }: { skip?: string; modeMask?: number } = {},
): Promise<Manifest> {
  const files: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const source = relative ? `${from}/${relative}` : from;
    await Deno.mkdir(relative ? `${to}/${relative}` : to, { mode: (await Deno.stat(source)).mode! & modeMask });
    const directories: string[] = [];
    for await (const entry of Deno.readDir(source)) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      if (!relative && entry.name === skip) continue;
      if (entry.isFile) files.push(name);
      else if (entry.isDirectory) directories.push(name);
      else throw new TemplateDamagedError(`${from}/${name} is neither a file nor a directory`);
    }
    for (const directory of directories) await walk(directory);
  };
  await walk("");
  let bytes = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const name = files[next++];
      await Deno.copyFile(`${from}/${name}`, `${to}/${name}`);
      const { size, mode } = await Deno.stat(`${to}/${name}`);
      if (mode! & 0o777 & ~modeMask) await Deno.chmod(`${to}/${name}`, mode! & modeMask);
      bytes += size;
    }
  };
  await Promise.all(Array.from({ length: Math.min(COPY_CONCURRENCY, files.length) }, worker));
  return { files: files.length, bytes };
}
