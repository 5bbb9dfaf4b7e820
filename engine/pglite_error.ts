/**
 * Words for PGlite's file-system errors. PGlite's Emscripten file system throws an `ErrnoError`
 * that carries only a WASI-numbered `errno` and no message, so a full disk or a bad DATA_DIR read
 * "undefined" in the start-up message; these are the numbers a DATA_DIR can produce.
 */

/** Emscripten errno → [POSIX name, description] (emscripten's ERRNO_CODES, as PGlite 0.5.16 bundles them). */
const ERRNOS: ReadonlyMap<number, readonly [string, string]> = new Map([
  [2, ["EACCES", "permission denied"]],
  [8, ["EBADF", "bad file descriptor"]],
  [19, ["EDQUOT", "disk quota exceeded"]],
  [20, ["EEXIST", "file exists"]],
  [22, ["EFBIG", "file too large"]],
  [29, ["EIO", "input/output error"]],
  [31, ["EISDIR", "is a directory"]],
  [33, ["EMFILE", "too many open files"]],
  [44, ["ENOENT", "no such file or directory"]],
  [51, ["ENOSPC", "no space left on device"]],
  [54, ["ENOTDIR", "not a directory"]],
  [55, ["ENOTEMPTY", "directory not empty"]],
  [63, ["EPERM", "operation not permitted"]],
  [69, ["EROFS", "read-only file system"]],
]);

/** The message of an error PGlite threw: its own when it has one, else its errno in words. */
export function describePGliteError(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  if (typeof message === "string" && message !== "") return message;
  const errno = (error as { errno?: unknown } | null)?.errno;
  if (typeof errno === "number") {
    const known = ERRNOS.get(errno);
    return known
      ? `${known[1]} (${known[0]}, a file-system error)`
      : `file-system error number ${errno} (Emscripten errno)`;
  }
  return String(error);
}
