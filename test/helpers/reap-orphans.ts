/**
 * vitest globalSetup: when the whole run ends, SIGKILL every CareLedger process of this checkout that
 * lost its parent. A test worker that vitest kills on a timeout never runs its `exit` handler
 * (careledger-process.ts), so the clouds and gateways it started live on, re-parented to init —
 * and one whose stdout pipe nobody reads blocks on its next log line and never exits, even on
 * SIGTERM. Only orphans (parent pid 1) of this checkout's bin/careledger.ts are touched.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../bin/careledger.ts', import.meta.url))

function orphans(): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(join('/proc', entry, 'cmdline'), 'utf8').split('\0')
      if (!cmdline.includes(BIN)) continue
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(join('/proc', entry, 'stat'), 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === 1) found.push(Number(entry))
    } catch {
      // the process ended while we looked, or /proc is not Linux's: nothing to reap
    }
  }
  return found
}

export default function setup(): () => void {
  return () => {
    for (const pid of orphans()) {
      try {
        process.kill(pid, 'SIGKILL')
        console.warn(`reaped an orphaned CareLedger process left by a test: pid ${pid}`)
      } catch {
        // already gone
      }
    }
  }
}
