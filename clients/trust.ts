/**
 * What a client remembers between runs (a TrustStore in a JSON file, mode 0600): the cloud's
 * block-signing key, pinned on first use unless given, and the newest head it verified. A later
 * answer behind that head is STALE_HEAD; one that does not extend it is FORKED_HEAD. A head
 * obtained elsewhere (an auditor's record, an anchor on another chain) is passed as `expect`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { homedir } from 'node:os'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../shared/errors.ts'
import type { TrustStore } from './retrieve.ts'
import type { KnownHead } from './verify.ts'

interface State {
  readonly signingKey: string
  readonly head: KnownHead & { readonly seenAt: string }
}

/** Default state directory: $CARELEDGER_CLIENT_STATE, or ~/.careledger/client. */
export const defaultStateDir = (): string => process.env.CARELEDGER_CLIENT_STATE || join(homedir(), '.careledger', 'client')

/** "height:hash" → KnownHead (the form `chain verify --expect-head` takes). */
export function parseHead(text: string): KnownHead {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim())
  if (!m) throw new CareLedgerError('INVALID_ARGUMENT', `--expect-head: ${JSON.stringify(text)} is not <height>:<64 hex block hash>`, { field: 'expect-head' })
  return { height: Number(m[1]), hash: m[2]! }
}

export class FileTrustStore implements TrustStore {
  readonly #file: string
  readonly #pinned: Uint8Array | null
  readonly #expect: readonly KnownHead[]
  #state: State | null

  /** One file per cloud URL under `dir`; `signingKey` (hex) pins the key outright. */
  constructor(dir: string, cloudUrl: string, opts: { signingKey?: string; expect?: readonly KnownHead[] } = {}) {
    this.#file = join(dir, `${new URL(cloudUrl).host.replace(/[^A-Za-z0-9.-]/g, '_')}.json`)
    this.#expect = opts.expect ?? []
    try {
      this.#state = JSON.parse(readFileSync(this.#file, 'utf8')) as State
    } catch {
      this.#state = null
    }
    if (opts.signingKey !== undefined && !/^[0-9a-f]{64}$/.test(opts.signingKey)) throw new CareLedgerError('INVALID_ARGUMENT', '--signing-key must be 64 hex digits (the cloud\'s Ed25519 block-signing public key)', { field: 'signing-key' })
    this.#pinned = opts.signingKey ? hexToBytes(opts.signingKey) : this.#state ? hexToBytes(this.#state.signingKey) : null
  }

  get file(): string {
    return this.#file
  }

  signingKey(): Uint8Array | null {
    return this.#pinned
  }

  knownHeads(): KnownHead[] {
    return [...(this.#state ? [{ height: this.#state.head.height, hash: this.#state.head.hash }] : []), ...this.#expect]
  }

  remember(head: { height: number; hash: string }, signingKey: Uint8Array): void {
    if (this.#state && this.#state.head.height > head.height) return
    const state: State = { signingKey: bytesToHex(signingKey), head: { height: head.height, hash: head.hash, seenAt: new Date().toISOString() } }
    mkdirSync(dirname(this.#file), { recursive: true, mode: 0o700 })
    const tmp = `${this.#file}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 })
    renameSync(tmp, this.#file)
    this.#state = state
  }
}
