/**
 * Makes PGlite's socket server read a large statement in linear time. pglite-socket 0.2.17 appends every socket read to
 * its handler's buffer with `Buffer.concat([buffer, read])` until a whole protocol message is there, so a statement of
 * S bytes arriving in reads of c bytes (64 KiB here) is copied S/c times: S²/2c bytes, 626 MB of short-lived buffers for
 * one 8 MB checkpoint, and 3.8 s instead of 0.7 s for 16 MB, on the one connection every append and checkpoint waits
 * for. The replacement holds the reads of an incomplete message aside and hands them to the original method once, when
 * the message is complete; everything else (whole messages, the start-up exchange) passes through as it came.
 * tests/unit/pglite_socket_framing_test.ts shows the copying and the order of pipelined statements.
 */
import { Buffer } from "node:buffer";
import { PGLiteSocketHandler } from "@electric-sql/pglite-socket";

/** The handler's fields and methods the replacement relies on (private in its type declarations). */
interface HandlerInternals {
  socket: unknown;
  active: boolean;
  messageBuffer: Buffer;
  handleData(data: Buffer): Promise<number>;
  detach(close?: boolean): Promise<unknown>;
}

/** The reads of an incomplete message held aside: `need` bytes of them complete it. */
interface Gathering {
  readonly chunks: Buffer[];
  bytes: number;
  readonly need: number;
}

/**
 * Codes a start-up exchange message carries where a regular message has its length (protocol 3.0, CancelRequest,
 * SSLRequest, GSSENCRequest): such a message has no type byte, and is left to the original method.
 */
const START_UP_CODES = new Set([196_608, 80_877_102, 80_877_103, 80_877_104]);

const prototype = PGLiteSocketHandler.prototype as unknown as HandlerInternals;
const originalHandleData = prototype.handleData;
const originalDetach = prototype.detach;
const gatherings = new WeakMap<object, Gathering>();
let installed = false;

/** Byte `i` of `a` followed by `b`. */
function byteAt(a: Buffer, b: Buffer, i: number): number {
  return i < a.length ? a[i] : b[i - a.length];
}

function int32At(a: Buffer, b: Buffer, i: number): number {
  return ((byteAt(a, b, i) << 24) | (byteAt(a, b, i + 1) << 16) | (byteAt(a, b, i + 2) << 8) | byteAt(a, b, i + 3)) >>>
    0;
}

/**
 * How many bytes from the start of `read` complete the last message of `buffered` + `read`, when that message is
 * incomplete and every byte of `read` belongs to it (so that holding `read` aside delays no complete message); 0
 * otherwise, and for the start-up exchange.
 */
function missingBytes(buffered: Buffer, read: Buffer): number {
  const known = buffered.length + read.length;
  if (known < 8 || START_UP_CODES.has(int32At(buffered, read, 4))) return 0;
  let at = 0;
  while (known - at >= 5) {
    const end = at + 1 + int32At(buffered, read, at + 1); // type byte, then the length counting itself
    if (end > known) return at <= buffered.length ? end - buffered.length : 0;
    at = end;
  }
  return 0;
}

function handleData(this: HandlerInternals, read: Buffer): Promise<number> {
  const gathering = gatherings.get(this);
  if (!this.socket || !this.active) {
    gatherings.delete(this);
    return originalHandleData.call(this, read);
  }
  if (gathering) {
    gathering.chunks.push(read);
    gathering.bytes += read.length;
    if (gathering.bytes < gathering.need) return Promise.resolve(0);
    gatherings.delete(this);
    return originalHandleData.call(this, Buffer.concat(gathering.chunks, gathering.bytes));
  }
  const need = missingBytes(this.messageBuffer, read);
  if (need > 0) {
    gatherings.set(this, { chunks: [read], bytes: read.length, need });
    return Promise.resolve(0);
  }
  return originalHandleData.call(this, read);
}

function detach(this: HandlerInternals, close?: boolean): Promise<unknown> {
  gatherings.delete(this);
  return originalDetach.call(this, close);
}

/** Replaces the handler's read path (idempotent); the embedded database calls it before starting the server. */
export function installSocketFraming(): void {
  if (installed) return;
  installed = true;
  prototype.handleData = handleData;
  prototype.detach = detach;
}
