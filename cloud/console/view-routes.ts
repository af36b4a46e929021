/**
 * The console's views that verify and decrypt in the browser: GET /doctor (doctor.html) and
 * GET /regulator (regulator.html), each with its script (bundle.ts, built on first request) and
 * styles. Like the admin console the files hold no data and are served without a credential
 * (page.ts: one head, one Content-Security-Policy); everything shown comes from the guarded API,
 * verified and decrypted in the page, with key files that never leave it.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { ServiceContext } from '../service/context.ts'
import { viewBundle, type ConsoleView } from './bundle.ts'
import { consolePage, secureReply } from './page.ts'

const HTML = 'text/html; charset=utf-8'
const CSS = 'text/css; charset=utf-8'

const VIEWS: Record<ConsoleView, { title: string; tokenLabel: string; styles: string[] }> = {
  doctor: { title: 'doctor view', tokenLabel: 'Doctor token', styles: ['/console/uplot.css', '/console/doctor.css'] },
  regulator: { title: 'regulator console', tokenLabel: 'Regulator token', styles: ['/console/regulator.css'] },
}

export function registerConsoleViews(app: FastifyInstance, ctx: ServiceContext): void {
  const file = (name: string) => readFileSync(new URL(name, import.meta.url))
  const statics: Record<string, { body: Buffer | string; type: string }> = {
    '/console/uplot.css': { body: file('../../node_modules/uplot/dist/uPlot.min.css'), type: CSS },
  }
  for (const [view, v] of Object.entries(VIEWS) as [ConsoleView, (typeof VIEWS)[ConsoleView]][]) {
    statics[`/${view}`] = { body: consolePage({ title: v.title, tokenLabel: v.tokenLabel, body: `./${view}.html`, styles: v.styles, scripts: [`/console/${view}.js`] }), type: HTML }
    statics[`/console/${view}.css`] = { body: file(`./${view}.css`), type: CSS }
    app.get(`/console/${view}.js`, async (_req, reply) => {
      try {
        const b = await viewBundle(view)
        return secureReply(reply, 'text/javascript; charset=utf-8').header('etag', `"${b.integrity}"`).send(b.js)
      } catch (err) {
        ctx.logger.error({ event: 'view_bundle_failed', view, err }, `could not bundle the ${view} view`)
        throw err
      }
    })
  }
  for (const [path, { body, type }] of Object.entries(statics)) app.get(path, async (_req, reply) => secureReply(reply, type).send(body))
}
