import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SequenceAllocator } from '../../devices/simulator/sequence.ts'
import { openSequenceFile } from '../../devices/simulator/seq-store.ts'
import { isCareLedgerError } from '../../shared/errors.ts'

const dirs: string[] = []
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'careledger-seq-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** The pid of a process that has exited: what a crashed simulator leaves in its lock file. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!

describe('SequenceAllocator (pure)', () => {
  it('persists a mark above every seq before handing it out, one write per block', () => {
    const marks: number[] = []
    const a = new SequenceAllocator(0, (m) => marks.push(m), 10)
    expect(a.take()).toBe(0)
    expect(marks).toEqual([11])
    expect(a.take(5)).toBe(1)
    expect(a.take(5)).toBe(6)
    expect(marks).toEqual([11])
    expect(a.take(3)).toBe(11) // 11..13 needs a new block
    expect(marks).toEqual([11, 24])
  })

  it('hands out nothing if the mark cannot be persisted', () => {
    let fail = true
    const a = new SequenceAllocator(50, () => {
      if (fail) throw new Error('disk full')
    })
    expect(() => a.take()).toThrow('disk full')
    fail = false
    expect(a.take()).toBe(50) // not 51: the failed attempt consumed nothing
  })

  it('resumes at the persisted mark, so seqs handed out before a crash are never reused', () => {
    let persisted = 0
    const first = new SequenceAllocator(persisted, (m) => (persisted = m), 100)
    const before = [first.take(), first.take(7), first.take()]
    // crash: no shutdown, only what was persisted survives
    const second = new SequenceAllocator(persisted, (m) => (persisted = m), 100)
    expect(second.take()).toBeGreaterThan(Math.max(...before) + 6)
  })
})

describe('sequence file (real files, fsync + rename)', () => {
  it('survives clean restarts and crashes without ever reusing a seq (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom('restart' as const, 'crash' as const)), { minLength: 1, maxLength: 40 }),
        (blockSize, ops) => {
          const dir = tempDir()
          let f = openSequenceFile(dir, 'bed-01', blockSize)
          const handedOut: number[] = []
          for (const op of ops) {
            if (op === 'restart') {
              f.release()
              f = openSequenceFile(dir, 'bed-01', blockSize)
            } else if (op === 'crash') {
              writeFileSync(join(dir, 'bed-01.lock'), String(deadPid())) // the process died holding the lock
              f = openSequenceFile(dir, 'bed-01', blockSize)
            } else {
              const first = f.allocator.take(op)
              for (let i = 0; i < op; i++) handedOut.push(first + i)
            }
          }
          f.release()
          // Strictly increasing across every restart and crash: unique, and never going back.
          handedOut.forEach((s, i) => i > 0 && expect(s).toBeGreaterThan(handedOut[i - 1]!))
          expect(readdirSync(dir).filter((n) => n !== 'bed-01.seq.json')).toEqual([]) // no temp files or locks left
        },
      ),
      { numRuns: 40 },
    )
  })

  it('writes {deviceId, next} as JSON and keeps devices apart', () => {
    const dir = tempDir()
    const a = openSequenceFile(dir, 'bed-01', 10)
    const b = openSequenceFile(dir, 'bed-02', 10)
    a.allocator.take(3)
    expect(JSON.parse(readFileSync(a.path, 'utf8'))).toMatchObject({ deviceId: 'bed-01', next: 13 })
    expect(b.allocator.take()).toBe(0)
    a.release()
    b.release()
  })

  it('refuses a second simulator for the same device, and takes over a dead one’s lock', () => {
    const dir = tempDir()
    const a = openSequenceFile(dir, 'bed-01')
    expect(() => openSequenceFile(dir, 'bed-01')).toThrow(/already being simulated/)
    writeFileSync(join(dir, 'bed-01.lock'), String(process.ppid)) // a live process
    expect(() => openSequenceFile(dir, 'bed-01')).toThrow(/already being simulated by process/)
    a.release()
    writeFileSync(join(dir, 'bed-01.lock'), String(deadPid()))
    openSequenceFile(dir, 'bed-01').release()
  })

  it('refuses to guess when the state file is corrupt or belongs to another device', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'bed-01.seq.json'), '{"deviceId":"bed-01","ne')
    let err: unknown
    try {
      openSequenceFile(dir, 'bed-01')
    } catch (e) {
      err = e
    }
    expect(isCareLedgerError(err, 'INVALID_ENCODING')).toBe(true)
    writeFileSync(join(dir, 'bed-01.seq.json'), '{"deviceId":"bed-02","next":5}')
    expect(() => openSequenceFile(dir, 'bed-01')).toThrow(/does not hold a sequence mark for bed-01/)
    expect(readdirSync(dir)).not.toContain('bed-01.lock') // a failed open releases its lock
  })
})
