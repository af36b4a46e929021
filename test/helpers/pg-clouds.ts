/**
 * Two `careledger cloud start --database postgres://…` processes of one deployment on a test
 * PostgreSQL (test/helpers/postgres.ts): A started first, then B with A's keys (block signing,
 * development regulator), both with one shared `--blocks` directory (for block files of earlier versions: the envelopes are rows of the database). The processes are
 * SIGKILLed and the directories removed after the test file.
 */
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect } from 'vitest'
import { CloudProcess, tempDataDir } from './cloud-process.ts'
import type { PostgresServer } from './postgres.ts'

export interface CloudPair {
  /** The database's URL. */
  readonly url: string
  /** The shared blockstore directory. */
  readonly shared: string
  readonly dirA: string
  readonly a: CloudProcess
  readonly b: CloudProcess
}

export function usePgClouds(server: () => PostgresServer): { temp(label: string): string; startPair(name: string, extraArgs?: readonly string[]): Promise<CloudPair> } {
  const dirs: Array<ReturnType<typeof tempDataDir>> = []
  const procs: CloudProcess[] = []
  afterAll(async () => {
    for (const p of procs) await p.kill('SIGKILL')
    for (const d of dirs) d.cleanup()
  })
  const temp = (label: string): string => {
    const d = tempDataDir(label)
    dirs.push(d)
    return d.dir
  }
  return {
    temp,
    async startPair(name: string, extraArgs: readonly string[] = []): Promise<CloudPair> {
      const url = await server().createDatabase(name)
      const shared = temp(`${name}-blocks`)
      const dirA = temp(`${name}-a`)
      const dirB = temp(`${name}-b`)
      const args = ['--database', url, '--blocks', shared, '--block-interval-s', '0.3', '--verify-interval-s', '0', ...extraArgs]
      const a = await CloudProcess.start({ dataDir: dirA, args, readyTimeoutMs: 60_000 })
      procs.push(a)
      expect(a.logs.find((l) => l.event === 'cloud_ready')).toMatchObject({ store: 'postgres' })
      // One deployment: the same keys (block signing, development regulator) on every process.
      cpSync(join(dirA, 'keys'), join(dirB, 'keys'), { recursive: true })
      cpSync(join(dirA, 'regulator'), join(dirB, 'regulator'), { recursive: true })
      const b = await CloudProcess.start({ dataDir: dirB, args, readyTimeoutMs: 60_000 })
      procs.push(b)
      return { url, shared, dirA, a, b }
    },
  }
}
