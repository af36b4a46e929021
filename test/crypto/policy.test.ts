import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { mod, invert } from '@noble/curves/abstract/modular.js'
import { evaluatePolicy, formatPolicy, parsePolicy, policyLeaves, POLICY_LIMITS } from '../../shared/crypto/policy/parse.ts'
import { compileLsss, reconstruct, type Lsss } from '../../shared/crypto/policy/lsss.ts'
import { canonicalAttribute } from '../../shared/crypto/policy/attribute.ts'
import { isCareLedgerError, type CareLedgerError } from '../../shared/errors.ts'
import { ORDER } from '../../shared/crypto/abe/groups.ts'
import { policyAndAttributesArb, policyArb } from '../helpers/policies.ts'

const strip = (n: ReturnType<typeof parsePolicy>): unknown =>
  n.kind === 'attr' ? n.name : { kind: n.kind, k: n.kind === 'threshold' ? n.k : undefined, children: n.children.map(strip) }

function policyError(src: string): CareLedgerError {
  try {
    parsePolicy(src)
  } catch (e) {
    if (isCareLedgerError(e)) return e
    throw e
  }
  throw new Error(`expected ${JSON.stringify(src)} to be rejected`)
}

/** Is (1,0,…,0) in the row span of the given rows, mod p? Plain Gaussian elimination. */
function targetInSpan(rows: readonly (readonly bigint[])[], cols: number, p: bigint): boolean {
  // Solve x·R = e1  ⇔  Rᵀ x = e1: eliminate on the augmented transposed system.
  const m = Array.from({ length: cols }, (_, c) => [...rows.map((r) => r[c]!), c === 0 ? 1n : 0n])
  let rank = 0
  const width = rows.length
  for (let col = 0; col < width && rank < cols; col++) {
    const pivot = m.findIndex((row, i) => i >= rank && mod(row[col]!, p) !== 0n)
    if (pivot < 0) continue
    ;[m[rank], m[pivot]] = [m[pivot]!, m[rank]!]
    const inv = invert(mod(m[rank]![col]!, p), p)
    m[rank] = m[rank]!.map((v) => mod(v * inv, p))
    for (let i = 0; i < cols; i++) {
      if (i === rank || m[i]![col] === 0n) continue
      const f = m[i]![col]!
      m[i] = m[i]!.map((v, j) => mod(v - f * m[rank]![j]!, p))
    }
    rank++
  }
  // Inconsistent iff some row is all-zero on the left with a non-zero right-hand side.
  return !m.some((row) => row.slice(0, width).every((v) => mod(v, p) === 0n) && mod(row[width]!, p) !== 0n)
}

const authorisedRows = (lsss: Lsss, attrs: Set<string>) => lsss.rows.filter((_, i) => attrs.has(lsss.rho[i]!))

describe('policy parser', () => {
  it('parses the example policy into its canonical form', () => {
    const p = parsePolicy('(role:doctor AND hospital:h1) or Patient:P-7F3A OR (role:researcher and consent:research)')
    expect(formatPolicy(p)).toBe('(role:doctor AND hospital:h1) OR patient:p-7f3a OR (role:researcher AND consent:research)')
  })

  it('gives AND precedence over OR and flattens chains', () => {
    expect(strip(parsePolicy('a:1 AND b:2 OR c:3 AND d:4 AND e:5'))).toEqual({
      kind: 'or',
      children: [
        { kind: 'and', children: ['a:1', 'b:2'] },
        { kind: 'and', children: ['c:3', 'd:4', 'e:5'] },
      ],
    })
  })

  it('turns 1-of-n into OR and n-of-n into AND, keeps k-of-n', () => {
    expect(formatPolicy(parsePolicy('1 of (a:1, b:2)'))).toBe('a:1 OR b:2')
    expect(formatPolicy(parsePolicy('2 of (a:1, b:2)'))).toBe('a:1 AND b:2')
    expect(formatPolicy(parsePolicy('2 OF (a:1, b:2 AND c:3, d:4)'))).toBe('2 of (a:1, b:2 AND c:3, d:4)')
  })

  it.each([
    ['', 0, 'empty'],
    ['role:doctor AND', 15, 'ends'],
    ['(role:doctor', 12, 'close the "(" at position 0'],
    ['role:doctor)', 11, 'unmatched'],
    ['doctor', 0, 'type:value'],
    ['role:doctor && dept:x', 12, 'unexpected character "&"'],
    ['role:doctor OR OR dept:x', 15, 'found "OR"'],
    ['4 of (a:1, b:2, c:3)', 0, 'can never be met'],
    ['0 of (a:1, b:2)', 0, 'can never be met'],
    ['2 of a:1', 5, '"("'],
    ['2 (a:1, b:2)', 2, '"of"'],
    ['role:doctor dept:x', 12, 'expected AND, OR'],
    ['role:', 0, 'attribute value'],
    ['1role:x', 0, 'attribute type'],
    ['a:b:c', 0, "more than one ':'"],
  ])('rejects %j at position %i (%s)', (src, position, fragment) => {
    const e = policyError(src)
    expect(e.code).toBe('INVALID_POLICY')
    expect(e.info.position).toBe(position)
    expect(e.message).toContain(fragment)
  })

  it('bounds length, leaves and depth', () => {
    expect(policyError('a:1 OR '.repeat(2000) + 'a:2').info.position).toBe(POLICY_LIMITS.maxLength)
    expect(policyError(Array.from({ length: 300 }, (_, i) => `a:${i}`).join(' OR ')).message).toContain('more than 256 attributes')
    expect(policyError('('.repeat(60) + 'a:1' + ')'.repeat(60)).message).toContain('nested')
  })

  it('canonical text re-parses to the same tree (property)', () => {
    fc.assert(
      fc.property(policyArb(20), ({ text }) => {
        const once = parsePolicy(text)
        expect(formatPolicy(parsePolicy(formatPolicy(once)))).toBe(formatPolicy(once))
        expect(strip(parsePolicy(formatPolicy(once)))).toEqual(strip(once))
      }),
      { numRuns: 300 },
    )
  })

  it('never throws anything but INVALID_POLICY on arbitrary text (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80, unit: fc.constantFrom(...'ab:12 ()ANDORof,&|x-'.split('')) }), (src) => {
        try {
          parsePolicy(src)
        } catch (e) {
          expect(isCareLedgerError(e, 'INVALID_POLICY')).toBe(true)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('canonicalises attributes case-insensitively and rejects malformed ones', () => {
    expect(canonicalAttribute('Role:Doctor')).toBe('role:doctor')
    expect(() => canonicalAttribute('role doctor')).toThrow(/type:value/)
  })
})

describe('LSSS (Lewko–Waters + Shamir thresholds)', () => {
  it('builds the worked example matrix', () => {
    const l = compileLsss(parsePolicy('(doctor:x AND cardiology:y) OR patient:p123'), ORDER)
    expect(l.rho).toEqual(['doctor:x', 'cardiology:y', 'patient:p123'])
    expect(l.rows).toEqual([
      [1n, 1n],
      [0n, ORDER - 1n],
      [1n, 0n],
    ])
  })

  it('reconstructs exactly when the policy is satisfied, with Σ ω_i M_i = e1; unauthorised sets cannot span e1 (property)', () => {
    fc.assert(
      fc.property(policyAndAttributesArb(10), ({ policy, attributes }) => {
        const tree = parsePolicy(policy.text)
        const lsss = compileLsss(tree, ORDER)
        expect(lsss.rho).toEqual(policyLeaves(tree).map((l) => l.name))
        const attrs = new Set(attributes)
        const sol = reconstruct(tree, attrs, ORDER)
        const satisfied = evaluatePolicy(tree, attrs)
        expect(sol !== null).toBe(satisfied)
        // The matrix itself agrees, independently of `reconstruct`.
        expect(targetInSpan(authorisedRows(lsss, attrs), lsss.cols, ORDER)).toBe(satisfied)
        if (sol) {
          const sum = new Array<bigint>(lsss.cols).fill(0n)
          sol.rows.forEach((r, j) => {
            expect(attrs.has(lsss.rho[r]!)).toBe(true)
            lsss.rows[r]!.forEach((v, c) => (sum[c] = mod(sum[c]! + v * sol.coefficients[j]!, ORDER)))
          })
          expect(sum).toEqual([1n, ...new Array(lsss.cols - 1).fill(0n)])
        }
      }),
      { numRuns: 400 },
    )
  })

  it('uses unit coefficients for pure AND/OR policies', () => {
    const tree = parsePolicy('(a:1 AND (b:2 OR c:3)) AND d:4')
    const sol = reconstruct(tree, new Set(['a:1', 'c:3', 'd:4']), ORDER)!
    expect(sol.coefficients.every((c) => c === 1n)).toBe(true)
  })
})
