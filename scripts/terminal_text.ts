/**
 * Text from records (a DLQ header, an alert's field) as the tools print it: a control character in it (ESC starting
 * `\u001b]0;title\u0007` or `\u001b[2J`, a C1 CSI) would otherwise reach the operator's terminal and drive it.
 */

/** Control and format characters (C0, DEL, C1, bidi overrides, zero-width, line separators). */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/** `text` with every control or format character as `\uXXXX` (JSON's escape, so a JSON line stays JSON). */
export function escapeControls(text: string): string {
  return text.replace(UNPRINTABLE, (char) => {
    let escaped = "";
    for (let i = 0; i < char.length; i++) escaped += `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`;
    return escaped;
  });
}

/** A name read from a record: as it is when plain (`validation_failed`), else quoted with its controls escaped. */
export function shownName(text: string): string {
  return /^[\w.-]+$/.test(text) ? text : escapeControls(JSON.stringify(text));
}

/** The most of an answer's body a tool quotes: another server's page (a wrong --url, a proxy) ran to megabytes. */
const QUOTED_BODY_CHARS = 2000;

/** `text` cut to what a message quotes, saying how much was left out. */
export function quotedBody(text: string): string {
  return text.length > QUOTED_BODY_CHARS
    ? `${text.slice(0, QUOTED_BODY_CHARS)}… (${text.length - QUOTED_BODY_CHARS} more characters)`
    : text;
}
