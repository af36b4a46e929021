/** fast-check generators for access policies, shared by the policy and ABE property tests. */
import fc from 'fast-check'
import { formatPolicy, type PolicyNode } from '../../shared/crypto/policy/parse.ts'

type Shape = { kind: 'leaf' } | { kind: 'and' | 'or'; children: Shape[] } | { kind: 'threshold'; k: number; children: Shape[] }

const shape: fc.Arbitrary<Shape> = fc.letrec<{ node: Shape }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Shape>({ kind: 'leaf' }),
    fc.record({ kind: fc.constantFrom('and' as const, 'or' as const), children: fc.array(tie('node'), { minLength: 2, maxLength: 3 }) }),
    fc
      .array(tie('node'), { minLength: 3, maxLength: 4 })
      .chain((children) => fc.integer({ min: 2, max: children.length - 1 }).map((k) => ({ kind: 'threshold' as const, k, children }))),
  ),
})).node

/** Number the leaves left to right so every attribute appears once: a:0, a:1, … */
function label(s: Shape, next: { i: number }): PolicyNode {
  if (s.kind === 'leaf') return { kind: 'attr', name: `a:${next.i++}`, pos: 0 }
  const children = s.children.map((c) => label(c, next))
  return s.kind === 'threshold' ? { kind: 'threshold', k: s.k, children, pos: 0 } : { kind: s.kind, children, pos: 0 }
}

export interface PolicyCase {
  readonly text: string
  readonly leaves: number
}

/** Random policies (AND, OR, k-of-n, nesting) over distinct attributes a:0 … a:(n-1), at most `maxLeaves`. */
export const policyArb = (maxLeaves = 12): fc.Arbitrary<PolicyCase> =>
  shape
    .map((s) => {
      const counter = { i: 0 }
      const tree = label(s, counter)
      return { text: formatPolicy(tree), leaves: counter.i }
    })
    .filter((p) => p.leaves <= maxLeaves)

/** A policy plus a random attribute set drawn from its universe (and one foreign attribute). */
export const policyAndAttributesArb = (maxLeaves = 12): fc.Arbitrary<{ policy: PolicyCase; attributes: string[] }> =>
  policyArb(maxLeaves).chain((policy) =>
    fc
      .subarray(
        Array.from({ length: policy.leaves }, (_, i) => `a:${i}`),
        { minLength: 0 },
      )
      .map((subset) => ({ policy, attributes: [...subset, 'z:other'] })),
  )
