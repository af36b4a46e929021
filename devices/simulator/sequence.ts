/**
 * Sequence numbers that survive restarts. The gateway stores each (deviceId, seq) once, so a seq
 * reused after a reboot would silently discard a real reading (docs/protocol.md §Sequence numbers).
 *
 * The rule: before handing out any seq, make durable a high-water mark above it. We reserve a
 * block at a time (one write per `blockSize` seqs, not per reading); after a crash the device
 * resumes at the persisted mark, so the unused rest of the block becomes a gap. Gaps are fine,
 * reuse is not. Pure: the durable write is injected (seq-store.ts does it with fsync + rename).
 */
import { CareLedgerError } from '../../shared/errors.ts'

/** Persist `hwm` durably: every seq below it may have been handed out. Must throw on failure. */
export type PersistMark = (hwm: number) => void

export class SequenceAllocator {
  /** Next seq to hand out. */
  private nextSeq: number
  /** Seqs below this are covered by the persisted mark. */
  private reservedUpTo: number
  private readonly persist: PersistMark
  private readonly blockSize: number

  /** `persistedMark`: the mark read back at start (0 for a new device). */
  constructor(persistedMark: number, persist: PersistMark, blockSize = 1000) {
    if (!Number.isSafeInteger(persistedMark) || persistedMark < 0) throw new CareLedgerError('INVALID_ARGUMENT', `sequence mark ${persistedMark} is not a non-negative safe integer`, { persistedMark })
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new CareLedgerError('INVALID_ARGUMENT', `block size ${blockSize} must be a positive integer`, { blockSize })
    this.nextSeq = persistedMark
    this.reservedUpTo = persistedMark // nothing handed out yet in this run: reserve before the first one
    this.persist = persist
    this.blockSize = blockSize
  }

  /** The first of `n` consecutive fresh seqs. Persists a new mark first when the block runs out. */
  take(n = 1): number {
    if (!Number.isSafeInteger(n) || n < 1) throw new CareLedgerError('INVALID_ARGUMENT', `cannot take ${n} sequence numbers`, { n })
    const first = this.nextSeq
    if (first + n > this.reservedUpTo) {
      const mark = first + n + this.blockSize
      if (!Number.isSafeInteger(mark)) throw new CareLedgerError('INVALID_ARGUMENT', 'sequence numbers exhausted', { mark })
      this.persist(mark) // throws → nothing handed out, state unchanged
      this.reservedUpTo = mark
    }
    this.nextSeq = first + n
    return first
  }

  get next(): number {
    return this.nextSeq
  }

  get reserved(): number {
    return this.reservedUpTo
  }
}
