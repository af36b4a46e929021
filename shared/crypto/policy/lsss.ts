/**
 * Policy → linear secret-sharing scheme (LSSS) matrix, and the reconstruction that decryption uses.
 *
 * - AND and OR follow Lewko–Waters (Eurocrypt 2011, Appendix G): entries in {0, 1, -1}, and every
 *   minimal satisfying set reconstructs with coefficients all equal to 1 (no exponentiations).
 *   An n-ary AND is the LW chain: child 1 gets v‖1, child i gets −1‖1 in its two new columns,
 *   the last child gets −1; the labels telescope back to v.
 * - `k of (c1..cm)` with 1 < k < m is Shamir sharing inside the matrix: child j gets
 *   v ‖ (j, j², …, j^(k−1)) in k−1 fresh columns; reconstruction uses Lagrange coefficients at 0.
 *
 * Row i of the matrix belongs to the i-th attribute leaf, left to right (policyLeaves order).
 */
import { mod, invert } from '@noble/curves/abstract/modular.js'
import type { PolicyNode } from './parse.ts'

export interface Lsss {
  /** rows × cols matrix over Z_order, entries reduced into [0, order). */
  readonly rows: readonly (readonly bigint[])[]
  /** ρ: the attribute labelling each row. */
  readonly rho: readonly string[]
  readonly cols: number
}

export interface Reconstruction {
  /** Row indices used, ascending. */
  readonly rows: readonly number[]
  /** ω_i for each used row, with Σ ω_i·M_i = (1, 0, …, 0). */
  readonly coefficients: readonly bigint[]
}

type Label = Map<number, bigint>

export function compileLsss(root: PolicyNode, order: bigint): Lsss {
  let cols = 1
  const labels: Label[] = []
  const rho: string[] = []
  const fresh = (): number => cols++

  const visit = (node: PolicyNode, label: Label): void => {
    switch (node.kind) {
      case 'attr':
        labels.push(label)
        rho.push(node.name)
        return
      case 'or':
        for (const child of node.children) visit(child, label)
        return
      case 'and': {
        const n = node.children.length
        const links = Array.from({ length: n - 1 }, fresh)
        node.children.forEach((child, i) => {
          const own: Label = i === 0 ? new Map(label) : new Map()
          if (i > 0) own.set(links[i - 1]!, order - 1n) // −1
          if (i < n - 1) own.set(links[i]!, 1n)
          visit(child, own)
        })
        return
      }
      case 'threshold': {
        const extra = Array.from({ length: node.k - 1 }, fresh)
        node.children.forEach((child, idx) => {
          const j = BigInt(idx + 1)
          const own: Label = new Map(label)
          let power = 1n
          for (const col of extra) {
            power = mod(power * j, order)
            own.set(col, power)
          }
          visit(child, own)
        })
        return
      }
    }
  }

  visit(root, new Map([[0, 1n]]))
  const rows = labels.map((label) => {
    const row = new Array<bigint>(cols).fill(0n)
    for (const [col, v] of label) row[col] = v
    return row
  })
  return { rows, rho, cols }
}

/**
 * Which rows an attribute set can use, and with which coefficients; null if it does not satisfy
 * the policy. Picks the cheapest branch of each OR and the k cheapest children of a threshold.
 */
export function reconstruct(root: PolicyNode, attributes: ReadonlySet<string>, order: bigint): Reconstruction | null {
  let nextRow = 0
  const rowOf = new Map<PolicyNode, number>()
  const number = (n: PolicyNode): void => {
    if (n.kind === 'attr') rowOf.set(n, nextRow++)
    else n.children.forEach(number)
  }
  number(root)

  const solve = (node: PolicyNode): Map<number, bigint> | null => {
    switch (node.kind) {
      case 'attr':
        return attributes.has(node.name) ? new Map([[rowOf.get(node)!, 1n]]) : null
      case 'or': {
        let best: Map<number, bigint> | null = null
        for (const child of node.children) {
          const s = solve(child)
          if (s && (!best || s.size < best.size)) best = s
        }
        return best
      }
      case 'and': {
        const out = new Map<number, bigint>()
        for (const child of node.children) {
          const s = solve(child)
          if (!s) return null
          for (const [r, w] of s) out.set(r, w)
        }
        return out
      }
      case 'threshold': {
        const satisfied: { x: bigint; s: Map<number, bigint> }[] = []
        node.children.forEach((child, i) => {
          const s = solve(child)
          if (s) satisfied.push({ x: BigInt(i + 1), s })
        })
        if (satisfied.length < node.k) return null
        const chosen = satisfied.sort((a, b) => a.s.size - b.s.size || Number(a.x - b.x)).slice(0, node.k)
        const out = new Map<number, bigint>()
        for (const { x, s } of chosen) {
          const lambda = lagrangeAtZero(x, chosen.map((c) => c.x), order)
          for (const [r, w] of s) out.set(r, mod(w * lambda, order))
        }
        return out
      }
    }
  }

  const solution = solve(root)
  if (!solution) return null
  const rows = [...solution.keys()].sort((a, b) => a - b)
  return { rows, coefficients: rows.map((r) => solution.get(r)!) }
}

/** ℓ_x(0) = Π_{m ≠ x} m / (m − x) over the chosen evaluation points. */
function lagrangeAtZero(x: bigint, points: readonly bigint[], order: bigint): bigint {
  let num = 1n
  let den = 1n
  for (const m of points) {
    if (m === x) continue
    num = mod(num * m, order)
    den = mod(den * (m - x), order)
  }
  return mod(num * invert(den, order), order)
}
