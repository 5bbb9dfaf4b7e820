/**
 * The `--url` option of the tools that talk to a running engine (loadgen, import, tail): one rule, so that they accept
 * and refuse the same addresses.
 */

/** The engine's base URL without trailing slashes, or null when the value is not an http(s) URL. */
export function engineBaseUrl(value: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return null;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  return value.replace(/\/+$/, "");
}

/** The refusal the tools print for a bad `--url`. */
export function badUrlMessage(value: string): string {
  return `--url must be an http(s) URL, got ${JSON.stringify(value)}`;
}
