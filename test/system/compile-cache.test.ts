/**
 * The CLI's compile cache (shared/cli/compile-cache.ts): where it lives, that `off` turns it off,
 * and that a real `careledger` process fills the directory it is given, mode 0700 — while the
 * command's output stays the same.
 */
import { describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir, homedir } from 'node:os'
import { join } from 'node:path'
import { compileCacheDir } from '../../shared/cli/compile-cache.ts'
import { BIN } from '../helpers/careledger-process.ts'

describe('compile cache', () => {
  it('lives in CARELEDGER_COMPILE_CACHE, else under XDG_CACHE_HOME, else ~/.cache; `off` turns it off', () => {
    expect(compileCacheDir({ CARELEDGER_COMPILE_CACHE: '/x/y' })).toBe('/x/y')
    expect(compileCacheDir({ CARELEDGER_COMPILE_CACHE: 'off' })).toBeNull()
    expect(compileCacheDir({ CARELEDGER_COMPILE_CACHE: '0' })).toBeNull()
    expect(compileCacheDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/careledger/node-compile-cache')
    expect(compileCacheDir({})).toBe(join(homedir(), '.cache', 'careledger', 'node-compile-cache'))
  })

  it('a careledger process fills the directory (0700) and prints the same as without it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'careledger-compile-cache-')), 'cache')
    try {
      const run = (env: Record<string, string>) => {
        const { NODE_COMPILE_CACHE: _, ...rest } = process.env
        return spawnSync(process.execPath, [BIN, 'policy', '--help'], { encoding: 'utf8', env: { ...rest, ...env } })
      }
      const off = run({ CARELEDGER_COMPILE_CACHE: 'off' })
      const on = run({ CARELEDGER_COMPILE_CACHE: dir })
      expect(on.status).toBe(0)
      expect(on.stdout).toBe(off.stdout)
      expect(on.stderr).toBe('')
      expect(statSync(dir).mode & 0o777).toBe(0o700)
      expect(readdirSync(dir, { recursive: true }).length).toBeGreaterThan(0)
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true })
    }
  })
})
