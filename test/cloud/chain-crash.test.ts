/**
 * Crash safety: a child process appends (single and bulk, over a worker thread) and seals blocks
 * in a tight loop and is SIGKILLed at random moments, many times, then restarted. Afterwards the
 * chain verifies completely, SQLite reports no corruption, and every record and block the child
 * reported as committed is present exactly once, with the id, position and hash it reported.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { verifyChain } from '../../cloud/chain/verify.ts'
import { chainTestKeys, tempDir } from './chain-helpers.ts'

const KILLS = 12
const tmp = tempDir('chain-crash')
const dbPath = join(tmp.dir, 'cloud.db')
const CHILD = join(import.meta.dirname, 'chain-crash-child.ts')
let child: ChildProcess | null = null

afterAll(() => {
  child?.kill('SIGKILL')
  tmp.cleanup()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Reported {
  records: Map<number, { stream: string; seq: number; hash: string }>
  blocks: Map<number, { hash: string; first: number; last: number }>
  duplicates: number
  /** Where each kill landed: inside append / bulk / seal (started, not finished), or between calls. */
  killedIn: string[]
}

/** Run the child until it has reported `atLeast` lines after READY plus a random pause, then SIGKILL it. */
async function runAndKill(seed: number, pauseMs: number, into: Reported): Promise<{ lines: number; signal: NodeJS.Signals | null }> {
  const c = spawn(process.execPath, [CHILD, dbPath, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  child = c
  let buffered = ''
  let stderr = ''
  let lines = 0
  let ready = false
  let inCall: string | null = null
  c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => c.on('exit', (code, signal) => r({ code, signal })))
  c.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop()! // a line cut by the kill is not a report
    for (const line of parts) {
      const f = line.split(' ')
      if (f[0] === 'READY') ready = true
      else if (f[0] === 'S') inCall = f[1]!
      else if (f[0] === 'E') inCall = null
      else if (f[0] === 'R') {
        const id = Number(f[1])
        const rec = { stream: f[2]!, seq: Number(f[3]), hash: f[4]! }
        const known = into.records.get(id)
        if (known) expect(known).toEqual(rec)
        into.records.set(id, rec)
        if (f[5] === 'duplicate') into.duplicates++
      } else if (f[0] === 'B') into.blocks.set(Number(f[1]), { hash: f[2]!, first: Number(f[3]), last: Number(f[4]) })
      if (ready) lines++
    }
  })
  const deadline = Date.now() + 30_000
  while (lines < 20 && Date.now() < deadline) {
    const early = await Promise.race([exited, sleep(10).then(() => null)])
    if (early) throw new Error(`child exited early (${JSON.stringify(early)}): ${stderr}`)
  }
  expect(lines, stderr).toBeGreaterThanOrEqual(20)
  await sleep(pauseMs)
  c.kill('SIGKILL')
  const { signal } = await exited
  into.killedIn.push(inCall ?? 'between')
  child = null
  return { lines, signal }
}

it(`keeps every committed record and block, once, across ${KILLS} SIGKILLs mid-append and mid-seal`, async () => {
  const reported: Reported = { records: new Map(), blocks: new Map(), duplicates: 0, killedIn: [] }
  let r = 0x9e3779b9
  const random = () => ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) / 2 ** 32)
  const progress: number[] = []
  for (let k = 0; k < KILLS; k++) {
    const { signal } = await runAndKill(k + 1, Math.floor(random() * 400), reported)
    expect(signal).toBe('SIGKILL')
    progress.push(reported.records.size)
  }
  // Work really happened between kills, and restarts re-sent batches that were already stored.
  for (let k = 1; k < progress.length; k++) expect(progress[k]!).toBeGreaterThan(progress[k - 1]!)
  expect(reported.duplicates).toBeGreaterThanOrEqual((KILLS - 1) * 5)
  expect(reported.blocks.size).toBeGreaterThan(KILLS)
  // Most kills landed inside a call (a transaction under way): the loop spends its time there.
  console.log(`kills landed in: ${reported.killedIn.join(', ')}`)
  expect(reported.killedIn.filter((w) => w !== 'between').length).toBeGreaterThanOrEqual(KILLS / 2)

  const db = new Database(dbPath, { readonly: true })
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok')
    const byId = db.prepare('SELECT stream, seq, lower(hex(hash)) AS hash FROM records WHERE id = ?')
    const atPosition = db.prepare('SELECT count(*) FROM records WHERE stream = ? AND seq = ?').pluck()
    const missing: number[] = []
    for (const [id, rec] of reported.records) {
      const row = byId.get(id) as { stream: string; seq: number; hash: string } | undefined
      if (!row) missing.push(id)
      else expect(row).toEqual(rec)
      expect(atPosition.get(rec.stream, rec.seq)).toBe(1)
    }
    expect(missing).toEqual([])
    const block = db.prepare('SELECT lower(hex(hash)) FROM blocks WHERE height = ?').pluck()
    for (const [height, b] of reported.blocks) expect(block.get(height)).toBe(b.hash)
    // Ids are consecutive: nothing half-written, nothing skipped.
    const { n, max } = db.prepare('SELECT count(*) AS n, max(id) AS max FROM records').get() as { n: number; max: number }
    expect(n).toBe(max)
    expect(n).toBeGreaterThanOrEqual(reported.records.size)
  } finally {
    db.close()
  }
  const keys = chainTestKeys('crash test')
  const report = await verifyChain(dbPath, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey })
  expect(report.failures).toEqual([])
  expect(report.ok).toBe(true)
  expect(report.records).toBeGreaterThanOrEqual(reported.records.size)
}, 240_000)
