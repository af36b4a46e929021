/**
 * The file behind a SequenceAllocator: `<stateDir>/<deviceId>.seq.json` holding the high-water
 * mark, replaced atomically (write temp, fsync, rename, fsync the directory — so after a power
 * cut the file holds the old mark or the new one, never a torn write or nothing).
 *
 * A lock file stops two simulators from driving the same device from one state directory: they
 * would both hand out the same seqs. A lock left by a dead process is taken over.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { CareLedgerError } from '../../shared/errors.ts'
import { assertDeviceId } from '../../shared/schema/device.ts'
import { SequenceAllocator } from './sequence.ts'

export interface SequenceFile {
  readonly allocator: SequenceAllocator
  readonly path: string
  /** Release the lock (the mark stays). */
  release(): void
}

export function readMark(path: string, deviceId: string): number {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0 // a device never run before
    throw e
  }
  let state: { deviceId?: unknown; next?: unknown }
  try {
    state = JSON.parse(text) as typeof state
  } catch {
    throw new CareLedgerError('INVALID_ENCODING', `${path} is not valid JSON; refusing to guess a sequence number (that could reuse one)`, { path })
  }
  if (state.deviceId !== deviceId || typeof state.next !== 'number' || !Number.isSafeInteger(state.next) || state.next < 0) {
    throw new CareLedgerError('INVALID_ENCODING', `${path} does not hold a sequence mark for ${deviceId}`, { path, deviceId })
  }
  return state.next
}

export function writeMarkAtomic(path: string, deviceId: string, mark: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, `${JSON.stringify({ deviceId, next: mark, updatedAt: new Date().toISOString() })}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  fsyncDir(join(path, '..'))
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } catch (e) {
    // Some platforms (Windows, some network file systems) cannot fsync a directory; rename is the best there is.
    if (!['EISDIR', 'EINVAL', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e
  } finally {
    closeSync(fd)
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function lock(path: string, deviceId: string): void {
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx', mode: 0o600 })
    return
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  }
  const holder = Number.parseInt(readFileSync(path, 'utf8'), 10)
  if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `device ${deviceId} is already being simulated by process ${holder} (lock ${path})`, { deviceId, pid: holder })
  }
  if (holder === process.pid) throw new CareLedgerError('INVALID_ARGUMENT', `device ${deviceId} is already being simulated in this process`, { deviceId })
  writeFileSync(path, String(process.pid), { mode: 0o600 }) // stale lock of a dead process
}

/** Open (creating if needed) the sequence state of one device and lock it for this process. */
export function openSequenceFile(stateDir: string, deviceId: string, blockSize = 1000): SequenceFile {
  assertDeviceId(deviceId)
  mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const path = join(stateDir, `${deviceId}.seq.json`)
  const lockPath = join(stateDir, `${deviceId}.lock`)
  lock(lockPath, deviceId)
  try {
    const allocator = new SequenceAllocator(readMark(path, deviceId), (mark) => writeMarkAtomic(path, deviceId, mark), blockSize)
    return { allocator, path, release: () => rmSync(lockPath, { force: true }) }
  } catch (e) {
    rmSync(lockPath, { force: true })
    throw e
  }
}
