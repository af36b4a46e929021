/**
 * Validity periods ("epochs") of attribute keys and sealed batches — how CareLedger revokes access
 * without revocation lists: every batch is sealed under `(patient policy) AND epoch:<month>`, and
 * every attribute key carries one `epoch:<month>` attribute for each month it is valid. A key the
 * authority does not renew opens nothing sealed after its last month. docs/security.md §Key expiry.
 *
 *   epoch            = the UTC calendar month of the gateway's clock when it seals: "2026-07"
 *   sealed policy    = "(" template ")" AND epoch:2026-07           (withEpoch; the gateway adds it)
 *   key attributes   = the holder's attributes ∪ { epoch:m | validFrom ≤ m ≤ validUntil }
 *
 * Why whole attributes per month rather than a comparison encoding over the bits of a month number
 * (Bethencourt–Sahai–Waters 2007 §4.3): a batch's policy grows by ONE row (one G1 element, one
 * scalar multiplication in Encaps on the gateway, 48 bytes) instead of up to 2·log2(#months) rows,
 * and decryption stays 3 pairings either way; the price is a key that grows by 48 bytes a month of
 * validity (capped at MAX_KEY_EPOCHS). `npm run bench:access` measures both encodings.
 *
 * An epoch is the unit a gateway may later encapsulate once for (one FABEO Encaps per stream per
 * epoch, batch keys derived from it): everything sealed in one epoch for one stream has the same
 * policy text, `withEpoch(template, epochOf(now))`.
 *
 * Batches sealed before epochs existed carry no epoch clause; keys with epoch attributes still open
 * them (extra attributes never hurt), so old data stays readable.
 */
import { CareLedgerError } from '../errors.ts'
import { formatPolicy, parsePolicy, policyLeaves, type PolicyNode } from '../crypto/policy/parse.ts'

/** "YYYY-MM", a UTC calendar month. */
export type Epoch = string & { readonly __epoch: unique symbol }

export const EPOCH_ATTRIBUTE_TYPE = 'epoch'
/** Most months one key may cover (5 years: 60 × 48 bytes of key). */
export const MAX_KEY_EPOCHS = 60

const EPOCH = /^(\d{4})-(0[1-9]|1[0-2])$/

/** Parse "YYYY-MM" (a UTC month, 2000-01 … 9999-12); INVALID_ARGUMENT naming the text otherwise. */
export function parseEpoch(text: string, what = 'epoch'): Epoch {
  const m = EPOCH.exec(typeof text === 'string' ? text.trim() : '')
  if (!m || Number(m[1]) < 2000) {
    throw new CareLedgerError('INVALID_ARGUMENT', `${what}: ${JSON.stringify(text)} is not a month written YYYY-MM (UTC), e.g. 2027-01`, { value: text, field: what })
  }
  return `${m[1]}-${m[2]}` as Epoch
}

/** The epoch (UTC month) of an instant in epoch milliseconds. */
export function epochOf(ms: number): Epoch {
  if (!Number.isFinite(ms)) throw new CareLedgerError('INVALID_ARGUMENT', `epochOf: ${ms} is not a time`, { value: ms })
  return new Date(ms).toISOString().slice(0, 7) as Epoch
}

const monthIndex = (e: Epoch): number => Number(e.slice(0, 4)) * 12 + Number(e.slice(5, 7)) - 1
const fromIndex = (i: number): Epoch => `${String(Math.floor(i / 12)).padStart(4, '0')}-${String((i % 12) + 1).padStart(2, '0')}` as Epoch

/** First instant of the epoch (inclusive) and of the next one (exclusive), epoch ms. */
export function epochBounds(e: Epoch): { readonly start: number; readonly end: number } {
  const i = monthIndex(e)
  return { start: Date.UTC(Math.floor(i / 12), i % 12, 1), end: Date.UTC(Math.floor((i + 1) / 12), (i + 1) % 12, 1) }
}

export const compareEpochs = (a: Epoch, b: Epoch): number => monthIndex(a) - monthIndex(b)

/** Every epoch from `from` to `until`, both included; at most MAX_KEY_EPOCHS. */
export function epochRange(from: Epoch, until: Epoch): Epoch[] {
  const a = monthIndex(from)
  const b = monthIndex(until)
  if (b < a) throw new CareLedgerError('INVALID_ARGUMENT', `the validity ends (${until}) before it starts (${from})`, { from, until })
  if (b - a + 1 > MAX_KEY_EPOCHS) {
    throw new CareLedgerError('INVALID_ARGUMENT', `a key may be valid for at most ${MAX_KEY_EPOCHS} months; ${from} … ${until} is ${b - a + 1}`, { from, until, max: MAX_KEY_EPOCHS })
  }
  return Array.from({ length: b - a + 1 }, (_, k) => fromIndex(a + k))
}

export const epochAttribute = (e: Epoch): string => `${EPOCH_ATTRIBUTE_TYPE}:${e}`

const epochOfAttribute = (attribute: string): Epoch | null => {
  if (!attribute.startsWith(`${EPOCH_ATTRIBUTE_TYPE}:`)) return null
  const text = attribute.slice(EPOCH_ATTRIBUTE_TYPE.length + 1)
  return EPOCH.test(text) ? (text as Epoch) : null
}

const isEpochLeaf = (n: PolicyNode): boolean => n.kind === 'attr' && n.name.startsWith(`${EPOCH_ATTRIBUTE_TYPE}:`)

/**
 * The policy a batch sealed in `epoch` carries: the template AND the epoch attribute, canonical.
 * A template that already names an epoch attribute is refused (the gateway owns that clause).
 */
export function withEpoch(policy: string, epoch: Epoch): string {
  const tree = parsePolicy(policy)
  const named = policyLeaves(tree).find(isEpochLeaf)
  if (named) {
    throw new CareLedgerError('INVALID_POLICY', `policy error at position ${named.pos}: "${named.name}": epoch attributes are added by the gateway when it seals, not written into policies`, {
      position: named.pos,
      policy,
    })
  }
  const leaf: PolicyNode = { kind: 'attr', name: epochAttribute(epoch), pos: 0 }
  const children = tree.kind === 'and' ? [...tree.children, leaf] : [tree, leaf]
  return formatPolicy({ kind: 'and', children, pos: 0 })
}

/**
 * The epoch a sealed policy is bound to (its top-level `AND epoch:…` clause), or null for a policy
 * sealed before epochs (or otherwise without one).
 */
export function policyEpoch(policy: string): Epoch | null {
  const tree = parsePolicy(policy)
  if (tree.kind === 'attr') return epochOfAttribute(tree.name)
  if (tree.kind !== 'and') return null
  for (const c of tree.children) {
    const e = c.kind === 'attr' ? epochOfAttribute(c.name) : null
    if (e) return e
  }
  return null
}

export interface KeyValidity {
  readonly from: Epoch
  readonly until: Epoch
}

/** The attributes a key for `attributes` valid over `validity` holds: the holder's plus one per month. */
export function keyAttributes(attributes: readonly string[], validity: KeyValidity): string[] {
  const own = attributes.filter((a) => epochOfAttribute(a.trim().toLowerCase()) === null)
  if (own.length !== attributes.length) {
    throw new CareLedgerError('INVALID_ARGUMENT', 'epoch attributes are set by --valid-from / --valid-until, not listed as attributes', { attributes })
  }
  return [...own, ...epochRange(validity.from, validity.until).map(epochAttribute)]
}

/** A key's validity, read from its epoch attributes; null for a key issued without one (before epochs). */
export function keyValidity(attributes: readonly string[]): KeyValidity | null {
  const epochs = attributes.map(epochOfAttribute).filter((e): e is Epoch => e !== null)
  if (epochs.length === 0) return null
  epochs.sort(compareEpochs)
  return { from: epochs[0]!, until: epochs[epochs.length - 1]! }
}

/**
 * Refuse a key that is no longer (or not yet) valid at `now`: KEY_EXPIRED / KEY_NOT_YET_VALID
 * (INVALID_ARGUMENT with `info.reason`), naming the months. Returns the validity (null: none).
 */
export function assertKeyValid(attributes: readonly string[], now: number): KeyValidity | null {
  const validity = keyValidity(attributes)
  if (!validity) return null
  const current = epochOf(now)
  if (compareEpochs(current, validity.until) > 0) {
    throw new CareLedgerError(
      'INVALID_ARGUMENT',
      `this key expired at the end of ${validity.until} (UTC; it was valid ${validity.from} … ${validity.until}, it is now ${current}): ask the attribute authority for a renewed key`,
      { reason: 'KEY_EXPIRED', ...validity, now: current },
    )
  }
  if (compareEpochs(current, validity.from) < 0) {
    throw new CareLedgerError('INVALID_ARGUMENT', `this key is valid only from ${validity.from} (UTC; it is now ${current})`, { reason: 'KEY_NOT_YET_VALID', ...validity, now: current })
  }
  return validity
}
