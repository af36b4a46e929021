/** Timing helpers shared by the benchmarks: warm up, run n times, report median and p90. */

export interface Timing {
  readonly median: number
  readonly p90: number
  readonly min: number
  readonly runs: number
  /**
   * CPU time of this thread per call (ms), the mean over the timed runs (the clock ticks in
   * milliseconds, too coarse to read one call): steadier than wall time on a shared machine.
   */
  readonly cpuMean: number
}

const threadCpuMs = (): number => {
  const u = process.threadCpuUsage()
  return (u.user + u.system) / 1000
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

/** Time `fn` (ms). `setup` runs before each timed call, outside the measurement. */
export function measure<T>(fn: (input: T) => unknown, opts: { runs: number; warmup?: number; setup?: () => T }): Timing {
  const setup = opts.setup ?? ((() => undefined) as () => T)
  for (let i = 0; i < (opts.warmup ?? 2); i++) fn(setup())
  const samples: number[] = []
  let cpu = 0
  for (let i = 0; i < opts.runs; i++) {
    const input = setup()
    const c0 = threadCpuMs()
    const t0 = performance.now()
    fn(input)
    samples.push(performance.now() - t0)
    cpu += threadCpuMs() - c0
  }
  samples.sort((a, b) => a - b)
  return { median: percentile(samples, 50), p90: percentile(samples, 90), min: samples[0]!, runs: opts.runs, cpuMean: cpu / opts.runs }
}

export const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))

/** Render rows as a fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}
