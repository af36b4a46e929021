/**
 * The console's anchors section in headless Chromium (test/helpers/browser.ts: Debian's chromium
 * where installed, else the npm one; playwright-core drives it): the anchoring state, the newest anchor with a link to its transaction under
 * the configured block-explorer template, and the list of anchors; an RPC outage shows as such.
 * Saves test-output/console-anchors.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { openBrowser, screenshotPath, signIn, type TestBrowser } from '../helpers/browser.ts'
import { anchoredCloud, until, type AnchoredCloud } from './anchor-helpers.ts'

let env: AnchoredCloud
let browser: TestBrowser
let page: Page

beforeAll(async () => {
  env = await anchoredCloud({ flags: { anchorSchedule: '0 0 1 1 *', anchorConfirmations: '2' } })
  env.grow()
  env.cloud.sealNow()
  await env.cloud.anchor!.anchorNow()
  await until(async () => (await env.cloud.anchor!.status()).latest, 'a confirmed anchor')
  browser = await openBrowser({ viewport: { width: 1440, height: 1400 } })
  page = await browser.page()
})

afterAll(async () => {
  await browser?.close()
  await env?.close()
})

describe('the console shows the anchors', () => {
  it('with the state, the newest anchor, and explorer links', async () => {
    const latest = (await env.cloud.anchor!.status()).latest!
    await signIn(page, env.cloud.url, (await env.cloud.tokens.create('admin', 'console-anchors')).token)
    await expect.poll(() => page.textContent('#anchor-state'), { timeout: 20_000 }).toBe('anchoring works')
    expect(await page.textContent('#anchor-latest')).toContain(`block ${latest.height}`)
    const href = await page.getAttribute('#anchor-latest a', 'href')
    expect(href).toBe(`https://explorer.example/tx/${latest.tx}`)
    expect(await page.getAttribute('#anchor-latest a', 'rel')).toContain('noopener')
    const rows = await page.$$eval('#anchors-list tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    expect(rows[0]!.slice(0, 2)).toEqual([String(latest.height), 'confirmed'])
    await page.screenshot({ path: screenshotPath('console-anchors'), fullPage: true })
  })

  it('an RPC outage shows as retrying, with the error', async () => {
    env.evm.proxy.set('refuse')
    env.grow()
    env.cloud.sealNow()
    void env.cloud.anchor!.anchorNow().catch(() => {})
    await expect.poll(() => page.textContent('#anchor-state'), { timeout: 30_000 }).toBe('RPC failing: retrying with backoff')
    expect(await page.textContent('#anchors-body')).toMatch(/in a row/)
    env.evm.proxy.set('pass')
  })
})
