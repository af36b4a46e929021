/**
 * The hand-written manifest check (shared/protocol/manifest-check.ts) against the zod schema it
 * stands in for, differentially: on random valid manifests and on random mutations of them (a
 * field replaced by an awkward value, a key dropped or added, the refinements broken, odd
 * prototypes), the fast check accepts exactly what zod accepts, returns zod's output (same fields,
 * same key order, a fresh types array), and parseManifest's errors are zod's (same code, reason
 * and problems). MANIFEST_CHECK_RUNS raises the number of cases (default 400 per property).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ManifestSchema, parseManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { manifestFastCheck } from '../../shared/protocol/manifest-check.ts'
import { VITAL_TYPES } from '../../shared/schema/vitals.ts'
import { CareLedgerError } from '../../shared/errors.ts'

const RUNS = Number(process.env.MANIFEST_CHECK_RUNS ?? 400)
const hexOf = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`))
const epoch = fc.integer({ min: 0, max: 8.64e15 })

const validManifest: fc.Arbitrary<BatchManifest> = fc
  .record({
    gateway: hexOf(16),
    stream: hexOf(32),
    device: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
    patient: hexOf(24).map((h) => `p-${h}`),
    seq: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    prevHex: hexOf(64),
    a: epoch,
    b: epoch,
    count: fc.integer({ min: 1, max: 100_000 }),
    types: fc.subarray(VITAL_TYPES as string[], { minLength: 1 }).map((t) => [...t].sort()),
    merkleRoot: hexOf(64),
    authority: hexOf(32),
    policy: fc.string({ minLength: 1, maxLength: 40 }),
    sealedAt: epoch,
    cid: fc.stringMatching(/^b[a-z2-7]{20,120}$/),
    size: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  })
  .map(({ prevHex, a, b, seq, ...m }) => ({ v: 1, ...m, seq, prev: seq === 0 ? null : prevHex, from: Math.min(a, b), to: Math.max(a, b) }) as unknown as BatchManifest)

const KEYS = ['v', 'gateway', 'stream', 'device', 'patient', 'seq', 'prev', 'from', 'to', 'count', 'types', 'merkleRoot', 'authority', 'policy', 'sealedAt', 'cid', 'size'] as const

/** Values that sit on, or just past, some edge of the schema. */
const awkward = fc.oneof(
  fc.constantFrom<unknown>(
    undefined, null, 0, -0, 1, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 53 - 1, 8.64e15, 8.64e15 + 1, 100_000, 100_001, 8192,
    '', 'x'.repeat(8192), 'x'.repeat(8193), '0123456789ABCDEF', '0123456789abcdef\n', ' 0123456789abcdef', 'p-0123456789abcdef01234567', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
    true, [], ['heart_rate'], ['spo2', 'heart_rate'], ['ecg', 'ecg'], ['nope'], [undefined], {}, new String('x'), new Number(1), 1n,
  ),
  fc.string(),
  fc.integer(),
  fc.double(),
  hexOf(16),
  hexOf(32),
  hexOf(64),
)

/** One mutation of a valid manifest (a fresh object; the original untouched). */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: fc.constantFrom(...KEYS), value: awkward }),
  fc.record({ kind: fc.constant('drop' as const), key: fc.constantFrom(...KEYS) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.constantFrom('extra', '__proto__', 'constructor', 'toString', '0'), value: awkward }),
  fc.record({ kind: fc.constantFrom('swapTime' as const, 'seqZero' as const, 'seqOne' as const, 'inherited' as const, 'nullProto' as const, 'classInstance' as const, 'array' as const, 'unsorted' as const) }),
)

type Mutation = { kind: 'set' | 'drop' | 'add' | 'swapTime' | 'seqZero' | 'seqOne' | 'inherited' | 'nullProto' | 'classInstance' | 'array' | 'unsorted'; key?: string; value?: unknown }

function mutate(m: BatchManifest, mu: Mutation): unknown {
  const o: Record<string, unknown> = { ...m, types: Array.isArray(m.types) ? [...m.types] : m.types }
  switch (mu.kind) {
    case 'set':
      o[mu.key!] = mu.value
      return o
    case 'drop':
      delete o[mu.key!]
      return o
    case 'add':
      Object.defineProperty(o, mu.key!, { value: mu.value, enumerable: true, configurable: true, writable: true })
      return o
    case 'swapTime':
      return { ...o, from: m.to, to: m.from }
    case 'seqZero':
      return { ...o, seq: 0 }
    case 'seqOne':
      return { ...o, seq: 1 }
    case 'inherited':
      return Object.assign(Object.create({ extra: 1 }), o)
    case 'nullProto':
      return Object.assign(Object.create(null), o)
    case 'classInstance':
      return Object.assign(new (class Manifest {})(), o)
    case 'array':
      return Object.assign([], o)
    case 'unsorted':
      return { ...o, types: Array.isArray(m.types) ? [...m.types].reverse() : m.types }
  }
}

/** parseManifest's outcome as data: the value, or the error's code, reason and problems. */
function outcome(f: () => unknown): unknown {
  try {
    return { ok: JSON.stringify(f()) }
  } catch (e) {
    if (!(e instanceof CareLedgerError)) throw e
    return { code: e.code, info: JSON.stringify(e.info), message: e.message }
  }
}

function zodOutcome(value: unknown): unknown {
  return outcome(() => {
    const r = ManifestSchema.safeParse(value)
    if (r.success) return r.data
    const problems = r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || 'manifest'}: ${i.message}`)
    throw new CareLedgerError('INVALID_ENCODING', `batch manifest: ${problems.join('; ')}`, { what: 'batch manifest', reason: 'SCHEMA', problems })
  })
}

/** The property: same verdict as zod; when it accepts, zod's exact output; parseManifest = zod's outcome. */
function agrees(value: unknown): void {
  const fast = manifestFastCheck(value)
  const zod = ManifestSchema.safeParse(value)
  expect(fast !== null).toBe(zod.success)
  if (fast !== null && zod.success) {
    expect(Object.keys(fast)).toEqual(Object.keys(zod.data))
    expect(JSON.stringify(fast)).toBe(JSON.stringify(zod.data))
    expect(fast.types).not.toBe((value as { types: unknown }).types)
  }
  expect(outcome(() => parseManifest(value))).toEqual(zodOutcome(value))
}

describe('manifestFastCheck against the zod ManifestSchema', () => {
  it('accepts every valid manifest, with zod’s output', () => {
    fc.assert(fc.property(validManifest, (m) => {
      expect(manifestFastCheck(m)).not.toBeNull()
      agrees(m)
    }), { numRuns: RUNS })
  })

  it('gives zod’s verdict, output and error on mutated manifests', () => {
    fc.assert(fc.property(validManifest, fc.array(mutation, { minLength: 1, maxLength: 3 }), (m, mus) => {
      let value: unknown = m
      for (const mu of mus) value = typeof value === 'object' && value !== null && !Array.isArray(value) ? mutate(value as BatchManifest, mu as Mutation) : value
      agrees(value)
    }), { numRuns: RUNS })
  })

  it('gives zod’s verdict on values that are not manifests at all', () => {
    for (const v of [undefined, null, 0, 'manifest', [], {}, new Map(), new Date(), new Uint8Array(3), () => 1]) agrees(v)
    fc.assert(fc.property(fc.anything(), agrees), { numRuns: RUNS })
  })
})
