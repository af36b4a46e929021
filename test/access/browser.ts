/**
 * How the doctor-view test gets its browser: the shared helper (test/helpers/browser.ts: Debian's
 * chromium where installed, else the npm one), as a playwright BrowserContext; closing the
 * context also deletes its throw-away profile.
 */
import type { BrowserContext } from 'playwright-core'
import { openBrowser } from '../helpers/browser.ts'

export async function launchBrowser(viewport: { width: number; height: number }): Promise<BrowserContext> {
  const browser = await openBrowser({ viewport })
  browser.context.once('close', () => void browser.close())
  return browser.context
}
