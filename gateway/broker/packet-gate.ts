/**
 * The packet gate: a thin Duplex between a client's socket and aedes that reads every MQTT fixed
 * header (MQTT 3.1.1 §2.2: one type byte, then the Remaining Length in 1–4 bytes, §2.2.3) and
 * refuses a packet by its announced length BEFORE its body is read, so nothing is buffered that the
 * connection's state does not allow (issue 8, item 2). aedes (through mqtt-packet) would otherwise
 * buffer a packet whole — up to the protocol's 256 MiB — before looking at it.
 *
 * States:
 *   - before authentication: the first packet must be a CONNECT of at most `connectMaxBytes`.
 *     Once it has passed, the gate HOLDS: it reads nothing more from the socket (TCP backpressure)
 *     until the login succeeded. A client may send packets right after CONNECT without waiting for
 *     CONNACK (MQTT 3.1.1 §3.1.4); they wait in the kernel's buffers, not in ours.
 *   - after `open(maxBytes)`: any packet up to `maxBytes` of Remaining Length.
 *
 * A packet over the limit, a first packet that is not CONNECT, or a Remaining Length longer than 4
 * bytes (§2.2.3) ends the gate: nothing of it reaches aedes, reading stops, and `onRefused` decides
 * how to close (the broker tells an authenticated device why first). Bytes pass through unchanged
 * and uncopied; the body of an allowed packet is skipped in O(1) per chunk.
 *
 * Why a stream in front of aedes and not a hook inside it: neither aedes 1.2 nor mqtt-packet 9 has
 * a packet-size limit or exposes the fixed header before buffering the body (the parser appends
 * every chunk to a BufferList and waits for `length` bytes), and the pre-authentication HOLD needs
 * control of reading from the socket (docs/architecture.md, docs/security.md).
 */
import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

export type GateRefusal = 'NOT_CONNECT' | 'CONNECT_TOO_LARGE' | 'PACKET_TOO_LARGE' | 'MALFORMED_LENGTH'

export interface GateRefusalInfo {
  readonly reason: GateRefusal
  /** MQTT control packet type (1 CONNECT, 3 PUBLISH, …). */
  readonly packetType: number
  /** The announced Remaining Length (null when it was malformed). */
  readonly length: number | null
  readonly limit: number
  /** True when the connection had authenticated (the device can be told on its errors topic). */
  readonly authenticated: boolean
}

export interface PacketGateOptions {
  /** Largest CONNECT Remaining Length accepted before authentication. */
  readonly connectMaxBytes: number
  /** Called once when the gate refuses; the gate has stopped reading but left the socket open. */
  readonly onRefused: (gate: PacketGate, info: GateRefusalInfo) => void
}

const CONNECT = 1
/** Where the scanner is: in a fixed header's type byte, its Remaining Length, a body; holding; refused. */
const Scan = { Header: 0, Length: 1, Body: 2, Held: 3, Refused: 4 } as const

export class PacketGate extends Duplex {
  readonly socket: Socket
  readonly #opts: PacketGateOptions
  #state: number = Scan.Header
  #authenticated = false
  #limit: number
  #packets = 0
  #type = 0
  #length = 0
  #multiplier = 1
  #lengthBytes = 0
  #remaining = 0
  /** Bytes read past the CONNECT while holding for authentication (at most one socket chunk). */
  #held: Buffer | null = null
  #wantMore = true

  constructor(socket: Socket, opts: PacketGateOptions) {
    super({ allowHalfOpen: false })
    this.socket = socket
    this.#opts = opts
    this.#limit = opts.connectMaxBytes
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('end', () => this.push(null))
    socket.on('error', (err) => this.destroy(err))
    socket.on('close', () => this.destroy())
  }

  /** The peer's address (aedes and the logs read it from the connection). */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort
  }

  get authenticated(): boolean {
    return this.#authenticated
  }

  /** The login succeeded: accept packets up to `maxBytes` and go on reading. */
  open(maxBytes: number): void {
    if (this.#state === Scan.Refused) return
    this.#authenticated = true
    this.#limit = maxBytes
    if (this.#state !== Scan.Held) return
    this.#state = Scan.Header
    const held = this.#held
    this.#held = null
    if (held) this.#onData(held)
    if (this.#state !== Scan.Held && this.#state !== Scan.Refused && this.#wantMore) this.socket.resume()
  }

  #onData(chunk: Buffer): void {
    if (this.#state === Scan.Refused) return
    if (this.#state === Scan.Held) {
      this.#held = this.#held ? Buffer.concat([this.#held, chunk]) : chunk
      this.socket.pause()
      return
    }
    let i = 0
    const n = chunk.length
    let packetStart = -1 // where the current packet's header began in this chunk (-1: in an earlier one)
    while (i < n) {
      if (this.#state === Scan.Body) {
        const step = Math.min(this.#remaining, n - i)
        i += step
        this.#remaining -= step
        if (this.#remaining === 0) this.#packetDone()
      } else if (this.#state === Scan.Header) {
        packetStart = i
        this.#type = chunk[i]! >> 4
        i++
        if (this.#packets === 0 && this.#type !== CONNECT) return this.#refuse('NOT_CONNECT', null, chunk.subarray(0, packetStart))
        this.#state = Scan.Length
        this.#length = 0
        this.#multiplier = 1
        this.#lengthBytes = 0
      } else if (this.#state === Scan.Length) {
        const b = chunk[i]!
        i++
        this.#length += (b & 0x7f) * this.#multiplier
        this.#multiplier *= 128
        this.#lengthBytes++
        if (b & 0x80) {
          if (this.#lengthBytes === 4) return this.#refuse('MALFORMED_LENGTH', null, chunk.subarray(0, Math.max(0, packetStart)))
          continue
        }
        if (this.#length > this.#limit) {
          const reason = this.#authenticated ? 'PACKET_TOO_LARGE' : this.#type === CONNECT ? 'CONNECT_TOO_LARGE' : 'PACKET_TOO_LARGE'
          return this.#refuse(reason, this.#length, chunk.subarray(0, Math.max(0, packetStart)))
        }
        this.#remaining = this.#length
        this.#state = Scan.Body
        if (this.#remaining === 0) this.#packetDone()
      } else {
        // Held in the middle of this chunk: keep the rest for open().
        this.#held = chunk.subarray(i)
        this.socket.pause()
        return this.#forward(chunk.subarray(0, i))
      }
    }
    this.#forward(chunk)
  }

  #packetDone(): void {
    this.#packets++
    this.#state = this.#authenticated ? Scan.Header : Scan.Held
  }

  #forward(bytes: Buffer): void {
    if (bytes.length === 0) return
    if (!this.push(bytes)) {
      this.#wantMore = false
      this.socket.pause()
    }
  }

  /** Refuse the packet whose header was just read; `before` holds the complete packets ahead of it in this chunk. */
  #refuse(reason: GateRefusal, length: number | null, before: Buffer): void {
    this.#forward(before)
    this.#state = Scan.Refused
    this.#held = null
    this.socket.pause()
    this.#opts.onRefused(this, { reason, packetType: this.#type, length, limit: this.#limit, authenticated: this.#authenticated })
  }

  override _read(): void {
    this.#wantMore = true
    if (this.#state !== Scan.Held && this.#state !== Scan.Refused) this.socket.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb()
    else this.socket.once('drain', () => cb())
  }

  /** aedes (mqtt-packet) writes a packet in several pieces under cork(): hand them to the socket as one write. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.socket.cork()
    let ok = true
    for (const c of chunks) ok = this.socket.write(c.chunk)
    this.socket.uncork()
    if (ok) cb()
    else this.socket.once('drain', () => cb())
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy()
    cb(err)
  }

  /** aedes and our listeners call these on the connection; they belong to the socket. */
  setNoDelay(noDelay = true): this {
    this.socket.setNoDelay(noDelay)
    return this
  }
}
