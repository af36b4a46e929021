/**
 * The console's doctor view: GET /doctor (doctor.html), its script (bundle.ts, built on first
 * request), its styles and uPlot's. Like the admin console, the files hold no data and are served
 * without a credential under a Content-Security-Policy that allows only same-origin scripts, styles
 * and fetches; everything shown comes from the guarded API, verified and decrypted in the page.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ServiceContext } from '../service/context.ts'
import { doctorBundle } from './bundle.ts'

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const secure = (reply: FastifyReply, type: string): FastifyReply =>
  reply.type(type).header('content-security-policy', CSP).header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY')

export function registerDoctorConsole(app: FastifyInstance, ctx: ServiceContext): void {
  const file = (name: string) => readFileSync(new URL(name, import.meta.url))
  const statics: Record<string, { body: Buffer; type: string }> = {
    '/doctor': { body: file('./doctor.html'), type: 'text/html; charset=utf-8' },
    '/console/doctor.css': { body: file('./doctor.css'), type: 'text/css; charset=utf-8' },
    '/console/uplot.css': { body: file('../../node_modules/uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  }
  for (const [path, { body, type }] of Object.entries(statics)) app.get(path, async (_req, reply) => secure(reply, type).send(body))
  app.get('/console/doctor.js', async (_req, reply) => {
    try {
      const b = await doctorBundle()
      return secure(reply, 'text/javascript; charset=utf-8').header('etag', `"${b.integrity}"`).send(b.js)
    } catch (err) {
      ctx.logger.error({ event: 'doctor_bundle_failed', err }, 'could not bundle the doctor view')
      throw err
    }
  })
}
