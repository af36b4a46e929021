/**
 * Periodic jobs (block sealing every few seconds, chain verification every few minutes, nonce
 * pruning): plain timers rather than cron, since the intervals are seconds and need not divide a
 * minute. A job never overlaps itself — the next run is scheduled when the previous one ends —
 * and `stop()` cancels the timer and waits for a run in progress, so the database is closed only
 * after the last job touched it. A job that throws is logged and tried again next time.
 */
import type { Logger } from 'pino'

export interface Job {
  readonly name: string
  /** Run now (or wait for the run in progress, then run); resolves when done. */
  runNow(): Promise<void>
  stop(): Promise<void>
}

export function every(name: string, intervalMs: number, task: () => unknown, opts: { logger: Logger; runAtStart?: boolean }): Job {
  let timer: NodeJS.Timeout | null = null
  let running: Promise<void> | null = null
  let stopped = false

  const run = (): Promise<void> => {
    const previous = running ?? Promise.resolve()
    const current: Promise<void> = previous.then(async () => {
      if (stopped) return
      try {
        await task()
      } catch (err) {
        opts.logger.error({ event: 'job_failed', job: name, err }, `${name} failed; it runs again in ${intervalMs} ms`)
      }
    })
    running = current.finally(() => {
      if (running === current) running = null
    })
    return current
  }

  const schedule = (): void => {
    if (stopped) return
    timer = setTimeout(() => {
      timer = null
      void run().finally(schedule)
    }, intervalMs)
    timer.unref?.()
  }

  if (opts.runAtStart) void run().finally(schedule)
  else schedule()

  return {
    name,
    runNow: run,
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      await running
    },
  }
}
