/**
 * The admin console (cloud/console/: static HTML, CSS and JS, no build step), the OpenAPI
 * description and the Prometheus metrics.
 *
 * The console's files hold no data, so they are served without a credential (the admin types
 * the token into the page); everything they show comes from the guarded API. They are read once
 * at start and served with a Content-Security-Policy that allows only same-origin scripts, styles
 * and fetches — no inline script, no framing.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { ServiceContext } from './context.ts'
import { guard } from './guard.ts'
import { openApiDocument } from './openapi.ts'

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const FILES = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/console/anchors.js': { file: 'anchors.js', type: 'text/javascript; charset=utf-8' },
} as const

export function registerConsoleRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = readFileSync(new URL(`../console/${file}`, import.meta.url))
    app.get(path, async (_req, reply) =>
      reply.type(type).header('content-security-policy', CSP).header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY').send(body),
    )
  }

  const doc = JSON.stringify(openApiDocument(ctx.config))
  app.get('/v1/openapi.json', { onRequest: guard(ctx, 'openapi') }, async (_req, reply) => reply.type('application/json; charset=utf-8').send(doc))

  app.get('/metrics', { onRequest: guard(ctx, 'metrics') }, async (_req, reply) => {
    const s = await ctx.backend.stats()
    ctx.metrics.height.set(s.height)
    ctx.metrics.records.set(s.records)
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics())
  })
}
