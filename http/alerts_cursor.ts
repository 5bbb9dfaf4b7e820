/**
 * The `cursor` of GET /v1/alerts: where a page ended, in the order the route lists alerts (occurredAt, newest first,
 * then alertId in code-point order), so that the next page starts right after it. Keyset rather than an offset: alerts
 * stored or pruned between two pages neither repeat an alert nor skip one, and an instant split across pages goes on
 * with the alertId after the last one read. Written as base64url (no `+`, `/` or `=` to percent-encode in a URL) of the
 * JSON `[occurredAt ms, alertId]`; opaque to clients, which pass `next` back as they got it.
 */
import { z } from "zod";
import { fromBase64, toBase64 } from "../actors/base64.ts";
import { isStorableTime } from "../actors/events.ts";

/** The last alert of a page: the next one lists those after it. */
export interface AlertPosition {
  /** Its occurredAt, epoch milliseconds (alerts are stored to the millisecond). */
  readonly at: number;
  readonly alertId: string;
}

/** Longest cursor accepted: one of an alert id many times longer than the engine makes (ids hold keys ≤ 256). */
export const MAX_CURSOR_LENGTH = 4096;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** The cursor naming `position`. */
export function encodeAlertCursor(position: AlertPosition): string {
  const bytes = new TextEncoder().encode(JSON.stringify([position.at, position.alertId]));
  return toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The position `text` names, or a reason it names none (it is not a cursor this route gave). */
export function decodeAlertCursor(text: string): AlertPosition | string {
  if (text.length === 0) return "must not be empty";
  if (text.length > MAX_CURSOR_LENGTH) return `must be at most ${MAX_CURSOR_LENGTH} characters`;
  if (!BASE64URL.test(text) || text.length % 4 === 1) return "is not a cursor (base64url, as `next` gave it)";
  let value: unknown;
  try {
    const standard = text.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64(standard)));
  } catch {
    return "is not a cursor (base64url, as `next` gave it)";
  }
  if (!Array.isArray(value) || value.length !== 2) return "is not a cursor (pass `next` as it was given)";
  const [at, alertId] = value;
  if (!Number.isSafeInteger(at) || !isStorableTime(at)) return "names no time an alert can have";
  // An id PostgreSQL cannot compare (NUL, a lone surrogate) would fail the query: a 503 for the client's mistake.
  if (typeof alertId !== "string" || alertId.length === 0 || alertId.includes("\u0000") || !alertId.isWellFormed()) {
    return "names no alert id";
  }
  const position = { at, alertId };
  // Only the cursors this route writes: other spellings of the same position (JSON spaces, spare bits) are not ours.
  return encodeAlertCursor(position) === text ? position : "is not a cursor (pass `next` as it was given)";
}

/** The `cursor` query parameter: validated and decoded to the position it names. */
export const alertCursor = z.string().transform((text, ctx) => {
  const decoded = decodeAlertCursor(text);
  if (typeof decoded !== "string") return decoded;
  ctx.addIssue({ code: "custom", message: decoded, input: text });
  return z.NEVER;
});
