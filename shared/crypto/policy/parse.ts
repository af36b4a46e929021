/**
 * The access-policy language:
 *
 *   policy    := or
 *   or        := and ( "OR" and )*
 *   and       := term ( "AND" term )*
 *   term      := "(" or ")" | threshold | attribute
 *   threshold := INT "of" "(" or ( "," or )* ")"          -- k of n, 1 <= k <= n
 *   attribute := type ":" value                             -- see attribute.ts
 *
 * Keywords are case-insensitive; AND binds tighter than OR. Errors name the 0-based position
 * and the problem: `INVALID_POLICY` with `info.position`.
 */
import { CareLedgerError } from '../../errors.ts'
import { attributeProblem } from './attribute.ts'

export type PolicyNode =
  | { readonly kind: 'attr'; readonly name: string; readonly pos: number }
  | { readonly kind: 'and'; readonly children: readonly PolicyNode[]; readonly pos: number }
  | { readonly kind: 'or'; readonly children: readonly PolicyNode[]; readonly pos: number }
  | { readonly kind: 'threshold'; readonly k: number; readonly children: readonly PolicyNode[]; readonly pos: number }

/** Bounds that keep a hostile policy from costing unbounded time or stack. */
export const POLICY_LIMITS = { maxLength: 8192, maxLeaves: 256, maxDepth: 48 } as const

type Token =
  | { t: '(' | ')' | ',' | 'and' | 'or' | 'of' | 'end'; pos: number; text: string }
  | { t: 'int'; pos: number; text: string; value: number }
  | { t: 'attr'; pos: number; text: string }

const WORD = /[A-Za-z0-9_.@/+:-]/

function fail(position: number, problem: string, policy: string): never {
  throw new CareLedgerError('INVALID_POLICY', `policy error at position ${position}: ${problem}`, { position, policy })
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++
      continue
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ t: c, pos: i, text: c })
      i++
      continue
    }
    if (!WORD.test(c)) fail(i, `unexpected character ${JSON.stringify(c)}`, src)
    const start = i
    while (i < src.length && WORD.test(src[i]!)) i++
    const text = src.slice(start, i)
    const lower = text.toLowerCase()
    if (lower === 'and' || lower === 'or' || lower === 'of') tokens.push({ t: lower, pos: start, text })
    else if (/^[0-9]+$/.test(text)) tokens.push({ t: 'int', pos: start, text, value: Number(text) })
    else {
      const problem = attributeProblem(text)
      if (problem) fail(start, problem, src)
      tokens.push({ t: 'attr', pos: start, text })
    }
  }
  tokens.push({ t: 'end', pos: src.length, text: 'end of policy' })
  return tokens
}

const describe = (tok: Token): string => (tok.t === 'end' ? 'end of policy' : JSON.stringify(tok.text))

/** Parse a policy string into a tree; n-ary AND/OR are flattened. */
export function parsePolicy(src: string): PolicyNode {
  if (typeof src !== 'string') throw new CareLedgerError('INVALID_POLICY', `policy must be a string, got ${typeof src}`, { position: 0 })
  if (src.length > POLICY_LIMITS.maxLength) fail(POLICY_LIMITS.maxLength, `policy is longer than ${POLICY_LIMITS.maxLength} characters`, src)
  const tokens = tokenize(src)
  let at = 0
  let leaves = 0
  const peek = (): Token => tokens[at]!
  const next = (): Token => tokens[at++]!
  const expect = (t: Token['t'], what: string): Token => {
    const tok = next()
    if (tok.t !== t) fail(tok.pos, `expected ${what} but found ${describe(tok)}`, src)
    return tok
  }

  const orExpr = (depth: number): PolicyNode => {
    if (depth > POLICY_LIMITS.maxDepth) fail(peek().pos, `policy is nested more than ${POLICY_LIMITS.maxDepth} levels deep`, src)
    const first = andExpr(depth)
    const children = [first]
    while (peek().t === 'or') {
      next()
      children.push(andExpr(depth))
    }
    return children.length === 1 ? first : { kind: 'or', children: flatten('or', children), pos: first.pos }
  }

  const andExpr = (depth: number): PolicyNode => {
    const first = term(depth)
    const children = [first]
    while (peek().t === 'and') {
      next()
      children.push(term(depth))
    }
    return children.length === 1 ? first : { kind: 'and', children: flatten('and', children), pos: first.pos }
  }

  const term = (depth: number): PolicyNode => {
    const tok = next()
    switch (tok.t) {
      case '(': {
        const inner = orExpr(depth + 1)
        expect(')', `")" to close the "(" at position ${tok.pos}`)
        return inner
      }
      case 'attr':
        if (++leaves > POLICY_LIMITS.maxLeaves) fail(tok.pos, `policy has more than ${POLICY_LIMITS.maxLeaves} attributes`, src)
        return { kind: 'attr', name: tok.text.normalize('NFC').toLowerCase(), pos: tok.pos }
      case 'int': {
        expect('of', `"of" after the threshold ${tok.value}`)
        const open = expect('(', `"(" to start the list of "${tok.value} of (...)"`)
        const children = [orExpr(depth + 1)]
        while (peek().t === ',') {
          next()
          children.push(orExpr(depth + 1))
        }
        expect(')', `"," or ")" to close the list opened at position ${open.pos}`)
        const k = tok.value
        if (k < 1 || k > children.length) {
          fail(tok.pos, `threshold ${k} of ${children.length} can never be met: k must be between 1 and ${children.length}`, src)
        }
        if (k === 1) return { kind: 'or', children: flatten('or', children), pos: tok.pos }
        if (k === children.length) return { kind: 'and', children: flatten('and', children), pos: tok.pos }
        return { kind: 'threshold', k, children, pos: tok.pos }
      }
      case 'end':
        return fail(tok.pos, at === 1 ? 'policy is empty' : 'policy ends where an attribute, "(" or "k of (" was expected', src)
      default:
        return fail(tok.pos, `expected an attribute, "(" or "k of (" but found ${describe(tok)}`, src)
    }
  }

  const root = orExpr(0)
  const tail = peek()
  if (tail.t !== 'end') {
    fail(tail.pos, tail.t === ')' ? 'unmatched ")"' : `expected AND, OR or end of policy but found ${describe(tail)}`, src)
  }
  return root
}

function flatten(kind: 'and' | 'or', children: PolicyNode[]): PolicyNode[] {
  return children.flatMap((c) => (c.kind === kind ? c.children : [c]))
}

/** The canonical text of a policy: what is hashed, stored in ciphertexts and shown to users. */
export function formatPolicy(node: PolicyNode): string {
  const inner = (child: PolicyNode, parent: PolicyNode['kind']): string =>
    child.kind === 'attr' || child.kind === 'threshold' || parent === 'threshold' ? formatPolicy(child) : `(${formatPolicy(child)})`
  switch (node.kind) {
    case 'attr':
      return node.name
    case 'and':
      return node.children.map((c) => inner(c, 'and')).join(' AND ')
    case 'or':
      return node.children.map((c) => inner(c, 'or')).join(' OR ')
    case 'threshold':
      return `${node.k} of (${node.children.map((c) => inner(c, 'threshold')).join(', ')})`
  }
}

/** Attribute leaves in left-to-right order: this is the row order of the LSSS matrix. */
export function policyLeaves(node: PolicyNode): Extract<PolicyNode, { kind: 'attr' }>[] {
  if (node.kind === 'attr') return [node]
  return node.children.flatMap(policyLeaves)
}

/** Plain boolean evaluation; the reference the LSSS is tested against. */
export function evaluatePolicy(node: PolicyNode, attributes: ReadonlySet<string>): boolean {
  switch (node.kind) {
    case 'attr':
      return attributes.has(node.name)
    case 'and':
      return node.children.every((c) => evaluatePolicy(c, attributes))
    case 'or':
      return node.children.some((c) => evaluatePolicy(c, attributes))
    case 'threshold':
      return node.children.filter((c) => evaluatePolicy(c, attributes)).length >= node.k
  }
}

/**
 * FABEO (crypto/abe/fabeo.ts) needs every attribute to label at most one LSSS row. Throws
 * UNSUPPORTED_POLICY naming the attribute and both positions. Pure: usable without loading the curves.
 */
export function assertEachAttributeOnce(tree: PolicyNode, policy: string): void {
  const seen = new Map<string, number>()
  for (const leaf of policyLeaves(tree)) {
    const first = seen.get(leaf.name)
    if (first !== undefined) {
      throw new CareLedgerError(
        'UNSUPPORTED_POLICY',
        `attribute "${leaf.name}" appears twice (positions ${first} and ${leaf.pos}); FABEO needs each attribute once — ` +
          `factor it out, e.g. "a AND (b OR c)" instead of "(a AND b) OR (a AND c)"`,
        { attribute: leaf.name, positions: [first, leaf.pos], policy },
      )
    }
    seen.set(leaf.name, leaf.pos)
  }
}
