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
  /**
   * An array while small (a reading has six names and this runs for every PUBLISH), a Set beyond
   * 16 names so that an object with thousands of names stays linear.
   */
  names: string[] | Set<string>
  expectName: boolean
}
type Frame = ObjectFrame | null // null: an array

const QUOTE = 0x22

/**
 * The characters the scan acts on. Commas matter only in objects (a name follows) and in a root
 * array (they count its elements); inside a nested array — an ECG chunk's samples — they are
 * skipped with the rest, so the regular expression engine, not a JavaScript loop, walks the digits.
 */
const STRUCTURAL = /["{}[\],]/g
const STRUCTURAL_NO_COMMA = /["{}[\]]/g

/** Check depth and repeated names; returns every duplicate (one per array element) or the depth problem. */
export function checkJsonText(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextProblem[] {
  const stack: Frame[] = []
  const problems: JsonTextProblem[] = []
  const flagged = new Set<number | null>()
  let rootItem = 0 // commas seen at depth 1 of a root array = index of the current element
  let at = 0
  for (;;) {
    const top = stack[stack.length - 1]
    const re = top === null && stack.length > 1 ? STRUCTURAL_NO_COMMA : STRUCTURAL
    re.lastIndex = at
    const m = re.exec(text)
    if (m === null) return problems
    const i = m.index
    const c = text.charCodeAt(i)
    at = i + 1
    if (c === QUOTE) {
      // The closing quote: the next one not escaped by a backslash.
      let end = i + 1
      let escaped = false
      for (;;) {
        const q = text.indexOf('"', end)
        if (q < 0) return problems // unterminated: JSON.parse says so
        const bs = text.indexOf('\\', end)
        if (bs >= 0 && bs < q) {
          escaped = true
          end = bs + 2
          continue
        }
        end = q
        break
      }
      at = end + 1
      if (top && top.expectName) {
        top.expectName = false
        const name = escaped ? decodeName(text.slice(i, end + 1)) : text.slice(i + 1, end)
        if (name === null) return problems
        if (Array.isArray(top.names) ? top.names.includes(name) : top.names.has(name)) {
          const item = stack[0] === null && stack.length >= 2 ? rootItem : null
          if (!flagged.has(item)) {
            flagged.add(item)
            problems.push({ reason: 'DUPLICATE_KEY', item, message: `the name ${JSON.stringify(clipName(name))} appears twice in one object; repeated names are refused (RFC 8259 §4: their meaning depends on the parser)` })
          }
        } else if (!Array.isArray(top.names)) top.names.add(name)
        else if (top.names.push(name) > 16) top.names = new Set(top.names)
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) {
        return [{ reason: 'DEPTH', item: null, message: `payload nests arrays and objects deeper than ${maxDepth} levels (a payload of readings needs 3)` }]
      }
      stack.push(c === 0x7b ? { names: [], expectName: true } : null)
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop()
    } else {
      // a comma
      if (top) top.expectName = true
      else if (stack.length === 1) rootItem++
    }
  }
}

function decodeName(token: string): string | null {
  try {
    return JSON.parse(token) as string
  } catch {
    return null
  }
}

const clipName = (s: string): string => (s.length > 64 ? `${s.slice(0, 64)}…` : s)
