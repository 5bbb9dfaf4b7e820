/**
 * The `--url` option of the tools that talk to a running engine (loadgen, import, tail): one rule, so that they accept
 * and refuse the same addresses.
 */

/**
 * The engine's base URL without trailing slashes, or null when the value is not an http(s) URL, or has a query or
 * fragment: the tools append their paths (`/v1/events`) to it, which landed inside the query, every request astray.
 */
export function engineBaseUrl(value: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return null;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  if (value.includes("?") || value.includes("#")) return null;
  return value.replace(/\/+$/, "");
}

/** The refusal the tools print for a bad `--url`. */
export function badUrlMessage(value: string): string {
  return `--url must be an http(s) URL without a query or fragment (the engine's base, such as ` +
    `http://127.0.0.1:8080), got ${JSON.stringify(value)}`;
}
