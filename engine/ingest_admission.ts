/**
 * Admission control of ingestion: bounds the bytes of event records waiting for the log's
 * acknowledgement (MAX_INGEST_PENDING_BYTES), so that a slow log under a flood of clients does not
 * make the process hold every request it is sent; beyond the bound a request is refused whole
 * (IngestOverloadedError, HTTP 429) before anything of it is appended.
 */
import { IngestOverloadedError } from "./errors.ts";

/** Counts the bytes of appends in flight against a limit; one per instance, created with its ingestion route. */
export class IngestAdmission {
  #pendingBytes = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes of records appended and not yet answered by the log. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Reserves `bytes` for an append, or throws IngestOverloadedError if they would pass the limit. A
   * request larger than the limit is admitted when nothing else waits: refused, it would be refused
   * on every retry.
   */
  acquire(bytes: number): void {
    if (this.#pendingBytes > 0 && this.#pendingBytes + bytes > this.limitBytes) {
      throw new IngestOverloadedError(
        `${this.#pendingBytes} bytes of events are waiting for the log's acknowledgement; this request's ${bytes} ` +
          `would pass MAX_INGEST_PENDING_BYTES (${this.limitBytes}). Nothing of it was stored: retry later.`,
      );
    }
    this.#pendingBytes += bytes;
  }

  /** Returns what `acquire(bytes)` reserved, once the append settled (acknowledged or failed). */
  release(bytes: number): void {
    this.#pendingBytes -= bytes;
  }
}
