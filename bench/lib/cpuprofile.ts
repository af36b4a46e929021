/**
 * Summarise V8 CPU profiles (`node --cpu-prof`): self time by function and by file, the way the
 * Capacity section of docs/operations.md quotes them.
 *
 *   node bench/lib/cpuprofile.ts <file.cpuprofile> [--top 25]
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { parseArgs } from 'node:util'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: readonly number[]
}

interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface ProfileSummary {
  readonly wallMs: number
  /** Sampled time that was not (idle) — what the thread spent running JS, GC and native code. */
  readonly busyMs: number
  readonly byFunction: Array<[string, number]>
  readonly byFile: Array<[string, number]>
}

const shortUrl = (url: string): string => {
  if (!url) return '(native)'
  const path = url.replace(/^file:\/\//, '')
  const nm = path.lastIndexOf('node_modules/')
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length)
  return path.startsWith('/') ? relative(process.cwd(), path) : path
}

export function summariseProfile(p: Profile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0))
  const fn = new Map<string, number>()
  const file = new Map<string, number>()
  let busy = 0
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    if (functionName === '(idle)') continue
    busy += us
    const f = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`
    fn.set(f, (fn.get(f) ?? 0) + us)
    const k = shortUrl(url)
    file.set(k, (file.get(k) ?? 0) + us)
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number])
  return { wallMs: (p.endTime - p.startTime) / 1000, busyMs: busy / 1000, byFunction: sorted(fn), byFile: sorted(file) }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
  const top = Number(values.top)
  for (const f of positionals) {
    const s = summariseProfile(JSON.parse(readFileSync(f, 'utf8')) as Profile)
    console.log(`${f}: ${(s.wallMs / 1000).toFixed(1)} s profiled, busy ${(s.busyMs / 1000).toFixed(2)} s (${((s.busyMs / s.wallMs) * 100).toFixed(2)} % of the thread)`)
    console.log('  self time by function:')
    for (const [k, ms] of s.byFunction.slice(0, top)) console.log(`    ${ms.toFixed(0).padStart(7)} ms  ${((ms / s.busyMs) * 100).toFixed(1).padStart(5)} %  ${k}`)
    console.log('  self time by file:')
    for (const [k, ms] of s.byFile.slice(0, Math.ceil(top / 2))) console.log(`    ${ms.toFixed(0).padStart(7)} ms  ${((ms / s.busyMs) * 100).toFixed(1).padStart(5)} %  ${k}`)
  }
}
