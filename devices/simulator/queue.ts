/**
 * The monitor's outbox: messages not yet acknowledged by the gateway, oldest first. Pure.
 *
 * - Bounded: at most `limit` messages wait to be sent; when full the oldest waiting one is dropped
 *   (the freshest vitals matter most at the bedside) and counted by the caller.
 * - A window of messages may be in flight at once; the oldest waiting message always goes next, so
 *   first transmissions are in seq order.
 * - After a failed send (nack) nothing goes out until everything in flight has settled, then
 *   sending resumes from the oldest unacknowledged message. (A message in flight behind the failed
 *   one may still be acknowledged first: the gateway stores by seq, so that only costs order.)
 *   Disconnects are not failures: the client keeps in-flight messages across reconnects.
 */
export class OutboundQueue<T> {
  private readonly entries: { item: T; inFlight: boolean }[] = []
  private readonly limit: number
  private waitingCount = 0
  private inFlightCount = 0
  private rewinding = false

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`queue limit must be a positive integer, got ${limit}`)
    this.limit = limit
  }

  /** Append a message; returns the messages dropped to make room (oldest first). */
  push(item: T): T[] {
    this.entries.push({ item, inFlight: false })
    this.waitingCount++
    const dropped: T[] = []
    while (this.waitingCount > this.limit) {
      const i = this.entries.findIndex((e) => !e.inFlight)
      dropped.push(this.entries.splice(i, 1)[0]!.item)
      this.waitingCount--
    }
    return dropped
  }

  /** The oldest waiting message, now marked in flight; undefined if none may go now. */
  takeNext(): T | undefined {
    if (this.rewinding && this.inFlightCount > 0) return undefined
    this.rewinding = false
    const e = this.entries.find((x) => !x.inFlight)
    if (!e) return undefined
    e.inFlight = true
    this.waitingCount--
    this.inFlightCount++
    return e.item
  }

  /** The gateway acknowledged it: forget it. */
  ack(item: T): void {
    const i = this.entries.findIndex((e) => e.item === item && e.inFlight)
    if (i < 0) return
    this.entries.splice(i, 1)
    this.inFlightCount--
  }

  /** Sending failed: it waits again, in its original place. */
  nack(item: T): void {
    const e = this.entries.find((x) => x.item === item && x.inFlight)
    if (!e) return
    e.inFlight = false
    this.inFlightCount--
    this.waitingCount++
    this.rewinding = true
  }

  get waiting(): number {
    return this.waitingCount
  }

  get inFlight(): number {
    return this.inFlightCount
  }

  /** Every unacknowledged message, oldest first. */
  items(): T[] {
    return this.entries.map((e) => e.item)
  }
}
