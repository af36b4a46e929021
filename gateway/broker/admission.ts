/**
 * Who gets a connection slot (issue 8, item 2). Counted from the TCP accept on both listeners, so a
 * TLS handshake in progress holds a slot like a CONNECT being read:
 *
 *   - at most `maxConnections` connections in total;
 *   - at most `maxUnauthenticated` that have not logged in yet (TLS handshake, CONNECT on its way,
 *     secret being verified), and at most `maxUnauthenticatedPerSource` of those from one source
 *     address, so one host on the ward network cannot take every free slot.
 *
 * A connection over a cap is closed at once, before a byte is read. An unauthenticated slot is held
 * at most for the TLS handshake timeout plus aedes' CONNECT timeout; the packet gate bounds what it
 * may send meanwhile.
 */
import type { Socket } from 'node:net'

export interface AdmissionLimits {
  readonly maxConnections: number
  readonly maxUnauthenticated: number
  readonly maxUnauthenticatedPerSource: number
}

export type AdmissionRefusal = 'MAX_CONNECTIONS' | 'MAX_UNAUTHENTICATED' | 'SOURCE_UNAUTHENTICATED'

interface Slot {
  readonly source: string
  pending: boolean
}

const keyOf = (address: string | undefined, port: number | undefined): string => `${address ?? '?'}|${port ?? 0}`

export class Admission {
  readonly limits: AdmissionLimits
  #total = 0
  #pending = 0
  readonly #pendingBySource = new Map<string, number>()
  /** By "address|port": the TLS socket of a connection shows the same peer as its TCP socket. */
  readonly #slots = new Map<string, Slot>()

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  get connections(): number {
    return this.#total
  }

  get unauthenticated(): number {
    return this.#pending
  }

  /** On accept: take a slot for this socket (released when it closes), or say which cap refused it. */
  admit(socket: Socket): AdmissionRefusal | null {
    const source = socket.remoteAddress ?? '?'
    if (this.#total >= this.limits.maxConnections) return 'MAX_CONNECTIONS'
    if (this.#pending >= this.limits.maxUnauthenticated) return 'MAX_UNAUTHENTICATED'
    const fromSource = this.#pendingBySource.get(source) ?? 0
    if (fromSource >= this.limits.maxUnauthenticatedPerSource) return 'SOURCE_UNAUTHENTICATED'
    const key = keyOf(socket.remoteAddress, socket.remotePort)
    const slot: Slot = { source, pending: true }
    this.#slots.set(key, slot)
    this.#total++
    this.#pending++
    this.#pendingBySource.set(source, fromSource + 1)
    socket.once('close', () => {
      if (this.#slots.get(key) === slot) this.#slots.delete(key)
      this.#total--
      this.#settle(slot)
    })
    return null
  }

  /** The connection from this peer logged in: it no longer counts as unauthenticated. */
  authenticated(address: string | undefined, port: number | undefined): void {
    const slot = this.#slots.get(keyOf(address, port))
    if (slot) this.#settle(slot)
  }

  #settle(slot: Slot): void {
    if (!slot.pending) return
    slot.pending = false
    this.#pending--
    const left = (this.#pendingBySource.get(slot.source) ?? 1) - 1
    if (left > 0) this.#pendingBySource.set(slot.source, left)
    else this.#pendingBySource.delete(slot.source)
  }
}
