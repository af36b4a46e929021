/**
 * What JSON.parse does not check in a device payload, checked on the text before it is parsed
 * (docs/protocol.md §Payload). Pure, one linear pass, no recursion.
 *
 *   - Nesting depth: a reading needs three levels (array → reading → samples). Anything recursive
 *     that later walks the value (zod, JSON.stringify of a rejected reading) must never meet a few
 *     thousand levels: a stack overflow there would end the process (issue 8, item 1).
 *   - Repeated member names: RFC 8259 §4 says names SHOULD be unique and that parsers disagree on
 *     which of two values they keep (JSON.parse keeps the last). A reading whose meaning depends on
 *     the parser is refused instead. Names are compared after unescaping, so "seq" and "s\u0065q"
 *     are the same name.
 *
 * The scan only tracks strings and brackets; the grammar itself is JSON.parse's job, and on text
 * JSON.parse would refuse anyway the scan answers "no problem" and lets it.
 */

export interface JsonTextProblem {
  readonly reason: 'DEPTH' | 'DUPLICATE_KEY'
  readonly message: string
  /**
   * For DUPLICATE_KEY in a payload that is an array: the index of the element holding the repeated
   * name (the other elements are judged normally). null: the payload as a whole.
   */
  readonly item: number | null
}

/** Deepest nesting of arrays and objects accepted; readings need 3. */
export const MAX_JSON_DEPTH = 8

interface ObjectFrame {
  readonly names: Set<string>
  expectName: boolean
}
type Frame = ObjectFrame | null // null: an array

const QUOTE = 0x22
const BACKSLASH = 0x5c

/** Check depth and repeated names; returns every duplicate (one per array element) or the depth problem. */
export function checkJsonText(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextProblem[] {
  const stack: Frame[] = []
  const problems: JsonTextProblem[] = []
  const flagged = new Set<number | null>()
  let rootItem = 0 // commas seen at depth 1 of a root array = index of the current element
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const start = i
      let escaped = false
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === BACKSLASH) {
          escaped = true
          i++
        } else if (d === QUOTE) break
      }
      if (i >= text.length) return problems // unterminated: JSON.parse says so
      const top = stack[stack.length - 1]
      if (top && top.expectName) {
        top.expectName = false
        const name = escaped ? decodeName(text.slice(start, i + 1)) : text.slice(start + 1, i)
        if (name === null) return problems
        if (top.names.has(name)) {
          const item = stack[0] === null && stack.length >= 2 ? rootItem : null
          if (!flagged.has(item)) {
            flagged.add(item)
            problems.push({ reason: 'DUPLICATE_KEY', item, message: `the name ${JSON.stringify(clipName(name))} appears twice in one object; repeated names are refused (RFC 8259 §4: their meaning depends on the parser)` })
          }
        } else top.names.add(name)
      }
      continue
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) {
        return [{ reason: 'DEPTH', item: null, message: `payload nests arrays and objects deeper than ${maxDepth} levels (a payload of readings needs 3)` }]
      }
      stack.push(c === 0x7b ? { names: new Set(), expectName: true } : null)
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop()
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1]
      if (top) top.expectName = true
      else if (stack.length === 1) rootItem++
    }
  }
  return problems
}

function decodeName(token: string): string | null {
  try {
    return JSON.parse(token) as string
  } catch {
    return null
  }
}

const clipName = (s: string): string => (s.length > 64 ? `${s.slice(0, 64)}…` : s)
