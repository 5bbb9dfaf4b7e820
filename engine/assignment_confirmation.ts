/**
 * Whether the consumer group has confirmed this member's assignment, from kafkajs's events. The
 * coordinator answers a heartbeat only while the member's generation is current, so heartbeats
 * answered after the member's latest assignment reached the listener say that assignment still
 * holds. A rebalance under way, or an assignment not yet handed to the listener, confirms nothing.
 */
export class AssignmentConfirmation {
  /** The last two answered heartbeats since the latest assignment or rebalance. */
  readonly #heartbeats: { readonly at: number; readonly generation: number }[] = [];
  #pending = 0;
  #rebalancing = false;

  /**
   * @param staleAfterMs a heartbeat answered longer ago than this confirms nothing (the member may
   *   have been dropped since without hearing of it)
   * @param now a monotonic clock (ms), injectable for tests
   */
  constructor(private readonly staleAfterMs: number, private readonly now: () => number = () => performance.now()) {}

  /** The member found the group rebalancing and is joining it again. */
  rebalancing(): void {
    this.#rebalancing = true;
    this.#heartbeats.length = 0;
  }

  /**
   * The member's consumer crashed: it is out of the group until kafkajs joins it again (if it restarts at all), so
   * heartbeats answered just before confirm nothing; only a new assignment's do.
   */
  left(): void {
    this.rebalancing();
  }

  /** The group handed the member a new assignment (it reaches the listener later). */
  assignmentReceived(): void {
    this.#rebalancing = false;
    this.#pending++;
    this.#heartbeats.length = 0;
  }

  /** The listener has the assignment received earliest of those still pending. */
  assignmentHandled(): void {
    this.#pending = Math.max(0, this.#pending - 1);
  }

  /** The coordinator answered a heartbeat of `generation`. */
  heartbeat(generation: number): void {
    this.#heartbeats.push({ at: this.now(), generation });
    if (this.#heartbeats.length > 2) this.#heartbeats.shift();
  }

  /**
   * Whether the assignment the listener holds has been confirmed since `since` (on the same clock):
   * two heartbeats of one generation answered since then (the first may have been asked before it),
   * the latest recently, with no rebalance or assignment pending.
   */
  confirmedSince(since: number): boolean {
    if (this.#rebalancing || this.#pending > 0 || this.#heartbeats.length < 2) return false;
    const [first, last] = this.#heartbeats;
    return first.generation === last.generation && first.at >= since && this.now() - last.at <= this.staleAfterMs;
  }
}
