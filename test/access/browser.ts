/**
 * How the doctor-view test gets its browser — one place to switch (e.g. to the shared browser
 * helper): Debian's Chromium through playwright-core, as test/cloud/service-console.test.ts does.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'

export async function launchBrowser(viewport: { width: number; height: number }): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (CI installs it, see .ci/run)`)
  const profile = mkdtempSync(join(tmpdir(), 'careledger-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
  })
  context.on('close', () => rmSync(profile, { recursive: true, force: true }))
  return context
}
