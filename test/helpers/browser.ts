/**
 * Headless Chromium for browser tests — every browser test opens its browser here:
 *
 *   import { openBrowser, screenshotPath } from '../helpers/browser.ts'
 *
 *   const browser = await openBrowser()                 // in beforeAll
 *   const page = await browser.page()                   // the first tab; browser.context.newPage() for more
 *   await page.goto(cloud.url)
 *   await page.screenshot({ path: screenshotPath('console') })   // test-output/console.png, the CI artefact
 *   await browser.close()                                // in afterAll: also deletes its profile
 *
 * Which Chromium: Debian's /usr/bin/chromium where it is installed (or CARELEDGER_CHROMIUM, a path),
 * else the one that `npm install` brought: @sparticuz/chromium (a devDependency, x86-64 Linux with
 * glibc ≥ 2.34), unpacked once into node_modules/.cache/ with the NSS libraries it ships (a machine
 * without Debian's chromium may lack them) and driven by playwright-core with its own flags — so
 * `npm install && npm test` is enough on a fresh machine. CARELEDGER_CHROMIUM=npm forces the npm one.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { REPO } from './careledger-process.ts'

export interface TestBrowser {
  /** Which Chromium runs: 'debian' (/usr/bin/chromium or CARELEDGER_CHROMIUM) or 'npm' (@sparticuz/chromium). */
  readonly kind: 'debian' | 'npm'
  readonly executablePath: string
  readonly context: BrowserContext
  /** The first tab (a fresh browser has one); `context.newPage()` opens more. */
  page(): Promise<Page>
  close(): Promise<void>
}

const DEBIAN = '/usr/bin/chromium'
/** Flags for Debian's build: headless, no sandbox (tests run as root in CI), nothing that phones home. */
const DEBIAN_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** test-output/<name>.png (the directory is created). */
export function screenshotPath(name: string): string {
  const dir = join(REPO, 'test-output')
  mkdirSync(dir, { recursive: true })
  return join(dir, `${name}.png`)
}

/** The npm Chromium, unpacked once per version into node_modules/.cache (atomically: parallel test files may race). */
async function npmChromium(): Promise<{ executablePath: string; args: string[]; env: Record<string, string> }> {
  const pkgDir = join(REPO, 'node_modules', '@sparticuz', 'chromium')
  if (!existsSync(pkgDir)) throw new Error('no Chromium: neither /usr/bin/chromium nor the @sparticuz/chromium devDependency (run npm install)')
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }
  const { default: Chromium, inflate } = await import('@sparticuz/chromium')
  Chromium.setGraphicsMode = false // no WebGL: the pages under test draw with SVG and canvas 2D
  const cache = join(REPO, 'node_modules', '.cache', 'careledger-chromium')
  const dir = join(cache, version)
  if (!existsSync(join(dir, 'chromium'))) {
    // A directory without the browser is left from an interrupted install (a rename is atomic, so
    // it is never another test file's unpacking in progress): remove it, or the rename below fails.
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(cache, { recursive: true })
    const staging = mkdtempSync(join(cache, `${version}.staging-`))
    // The package unpacks into os.tmpdir(), which it reads when called: point that at our staging
    // directory for the synchronous start of the call (every path is chosen before the first await).
    const saved = process.env.TMPDIR
    process.env.TMPDIR = staging
    let unpacking: Promise<string[]>
    try {
      // The browser, its fonts, and the NSS/NSPR/expat libraries it links (built for Amazon Linux 2023).
      unpacking = Promise.all([Chromium.executablePath(), inflate(join(pkgDir, 'bin', 'al2023.tar.br'))])
    } finally {
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
    }
    const [exe] = await unpacking
    if (exe !== join(staging, 'chromium')) throw new Error(`@sparticuz/chromium unpacked to ${exe}, not into ${staging}`)
    try {
      renameSync(staging, dir)
    } catch {
      rmSync(staging, { recursive: true, force: true }) // another test file finished first
    }
  }
  // Its own libraries first (the machine's NSS may be missing or another version); its fonts come
  // with a fonts.conf naming /tmp/fonts: ours is used only where the machine has no fontconfig.
  const env: Record<string, string> = { LD_LIBRARY_PATH: [join(dir, 'al2023', 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') }
  if (!existsSync('/etc/fonts/fonts.conf') && existsSync(join(dir, 'fonts'))) {
    const conf = join(dir, 'fonts.conf')
    if (!existsSync(conf)) writeFileSync(conf, `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig><dir>${join(dir, 'fonts')}</dir><cachedir>${join(dir, 'fonts-cache')}</cachedir></fontconfig>\n`)
    env.FONTCONFIG_FILE = conf
  }
  return { executablePath: join(dir, 'chromium'), args: Chromium.args, env }
}

/** A fresh headless Chromium with its own throw-away profile. */
export async function openBrowser(opts: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const wanted = process.env.CARELEDGER_CHROMIUM
  const useNpm = wanted === 'npm' || (!wanted && !existsSync(DEBIAN))
  const found = useNpm ? await npmChromium() : { executablePath: wanted || DEBIAN, args: DEBIAN_ARGS, env: {} }
  if (!existsSync(found.executablePath)) throw new Error(`CARELEDGER_CHROMIUM=${wanted}: no such file`)
  const profile = mkdtempSync(join(tmpdir(), 'careledger-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: found.executablePath,
    headless: true,
    args: found.args,
    env: { ...process.env, ...found.env } as Record<string, string>,
    viewport: opts.viewport ?? { width: 1440, height: 1100 },
  })
  return {
    kind: useNpm ? 'npm' : 'debian',
    executablePath: found.executablePath,
    context,
    page: async () => context.pages()[0] ?? (await context.newPage()),
    close: async () => {
      await context.close()
      // Chromium's helper processes may still write into the profile for a moment after close: retry,
      // and never fail a test over removing a temporary directory.
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
      } catch (e) {
        console.warn(`could not remove the browser profile ${profile}: ${(e as Error).message}`)
      }
    },
  }
}

/** Open a console page and sign in with a token (every console has #token and #token-form). */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url)
  await page.fill('#token', token)
  await page.click('#token-form button[type=submit]')
}

export interface SeenRequest {
  readonly method: string
  readonly url: string
  readonly origin: string
  readonly path: string
  /** The request body as sent ('' for none). */
  readonly body: string
  readonly headers: Record<string, string>
}

/**
 * Every request the browser makes from now on, in every tab of the context — how a test shows that
 * a key file opened in a page never leaves it (together with `expectNoneCarries`).
 */
export function recordNetwork(context: BrowserContext): { seen(): SeenRequest[] } {
  const requests: import('playwright-core').Request[] = []
  context.on('request', (r) => void requests.push(r))
  return {
    seen: () =>
      requests.map((r) => {
        const u = new URL(r.url())
        return { method: r.method(), url: r.url(), origin: u.origin, path: u.pathname, body: r.postData() ?? '', headers: r.headers() }
      }),
  }
}

/** The forms a secret could travel in: hex, base64, base64url and raw bytes (a 48-character stretch of each). */
export function secretForms(secret: Uint8Array | string): string[] {
  if (typeof secret === 'string') return [secret]
  const b = Buffer.from(secret)
  return [b.toString('hex'), b.toString('base64'), b.toString('base64url'), b.toString('latin1')].map((x) => x.slice(0, 48))
}

/** No request's URL, headers or body carries any of the secrets' forms. */
export function expectNoneCarries(seen: readonly SeenRequest[], secrets: readonly (Uint8Array | string)[]): void {
  const forms = secrets.flatMap(secretForms)
  for (const r of seen) {
    const sent = r.url + r.body + JSON.stringify(r.headers)
    for (const f of forms) if (sent.includes(f)) throw new Error(`${r.method} ${r.path} carries a secret (${f.slice(0, 12)}…)`)
  }
}
