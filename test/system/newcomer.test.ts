/**
 * A newcomer's first minutes (issue 8 item 16, and item 14's citations):
 *
 *   - `npm install && npm test` needs no Debian chromium: the browser tests run the Chromium that
 *     npm brought (@sparticuz/chromium, through test/helpers/browser.ts) where none is installed;
 *   - `npx careledger` under the machine's own Node 20 runs CareLedger on the pinned Node 24 and
 *     prints nothing but its output (no EBADENGINE warnings);
 *   - bin/careledger.ts is committed executable, so `npm ci` leaves the checkout clean;
 *   - code and docs cite papers and RFCs, never notes outside the repository.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openBrowser, screenshotPath } from '../helpers/browser.ts'
import { REPO } from '../helpers/careledger-process.ts'

describe('a fresh machine', () => {
  it('runs the browser tests on the Chromium npm installed (@sparticuz/chromium, headless, driven by playwright-core)', async () => {
    const saved = process.env.CARELEDGER_CHROMIUM
    process.env.CARELEDGER_CHROMIUM = 'npm' // as on a machine without Debian's chromium
    try {
      const browser = await openBrowser({ viewport: { width: 640, height: 360 } })
      try {
        expect(browser.kind).toBe('npm')
        expect(browser.executablePath.startsWith(join(REPO, 'node_modules', '.cache', 'careledger-chromium'))).toBe(true)
        const page = await browser.page()
        await page.setContent('<main><h1>CareLedger</h1><svg width="200" height="60"><rect width="200" height="60" fill="#1d3557"/></svg><p id="n"></p></main><script>document.getElementById("n").textContent = String(6 * 7)</script>')
        expect(await page.textContent('#n')).toBe('42')
        // It runs on the NSS libraries npm brought (a machine without Debian's chromium may have none).
        const children = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(process.pid))
        const maps = children.map((pid) => { try { return readFileSync(`/proc/${pid}/maps`, 'utf8') } catch { return '' } }).join('')
        expect(maps).toContain(join('careledger-chromium', '153.0.0', 'al2023', 'lib', 'libnss3.so'))
        const shot = screenshotPath('npm-chromium')
        await page.screenshot({ path: shot })
        expect(statSync(shot).size).toBeGreaterThan(1000)
      } finally {
        await browser.close()
      }
    } finally {
      if (saved === undefined) delete process.env.CARELEDGER_CHROMIUM
      else process.env.CARELEDGER_CHROMIUM = saved
    }
  }, 180_000)

  const systemNode = spawnSync('/usr/bin/node', ['--version'], { encoding: 'utf8' })
  const oldNode = systemNode.status === 0 && Number(/^v(\d+)/.exec(systemNode.stdout)?.[1]) < 24 && existsSync('/usr/bin/npx')
  it.skipIf(!oldNode)('`npx careledger` under the machine\'s Node 20 runs on the pinned Node 24 and prints no EBADENGINE warning', () => {
    // PATH as a newcomer has it: the system's node and npx, not node_modules/.bin.
    const r = spawnSync('/usr/bin/npx', ['careledger', '--version'], { cwd: REPO, encoding: 'utf8', env: { HOME: process.env.HOME ?? '/root', PATH: '/usr/bin:/bin' } })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}\n`)
    expect(r.status).toBe(0)
  })

  const git = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: REPO, encoding: 'utf8' })
  it.skipIf(git.stdout.trim() !== 'true')('bin/careledger.ts is committed executable (npm makes package bins 0755: the checkout stays clean)', () => {
    expect(execFileSync('git', ['ls-files', '-s', 'bin/careledger.ts'], { cwd: REPO, encoding: 'utf8' })).toMatch(/^100755 /)
  })

  it.skipIf(git.stdout.trim() !== 'true')('cites papers and RFCs, never notes outside the repository (shared/research is not shipped)', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: REPO, encoding: 'utf8' }).split('\n').filter((f) => f && !f.startsWith('test/vectors/') && f !== 'test/system/newcomer.test.ts' && !f.endsWith('package-lock.json'))
    const offenders: string[] = []
    for (const f of files) {
      const path = join(REPO, f)
      if (!existsSync(path) || statSync(path).size > 2_000_000) continue
      const text = readFileSync(path, 'utf8')
      for (const pattern of [/shared\/research/, /(^|[\s(`'"])research\/[a-z-]+\.md/, /\.\.\/shared\/(research|seeds)/]) {
        const m = pattern.exec(text)
        if (m) offenders.push(`${f}: …${text.slice(Math.max(0, m.index - 30), m.index + 40).replace(/\n/g, ' ')}…`)
      }
    }
    expect(offenders).toEqual([])
  })
})
