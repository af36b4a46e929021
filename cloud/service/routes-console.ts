/**
 * The admin console (cloud/console/: static HTML, CSS and JS, no build step), the OpenAPI
 * description and the Prometheus metrics.
 *
 * The console's files hold no data, so they are served without a credential (the admin types
 * the token into the page); everything they show comes from the guarded API. They are read once
 * at start and served with the console's head and Content-Security-Policy (cloud/console/page.ts):
 * only same-origin scripts, styles and fetches — no inline script, no framing.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { ServiceContext } from './context.ts'
import { guard } from './guard.ts'
import { openApiDocument } from './openapi.ts'
import { consolePage, secureReply } from '../console/page.ts'

const FILES = {
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/console/anchors.js': { file: 'anchors.js', type: 'text/javascript; charset=utf-8' },
} as const

export function registerConsoleRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const index = consolePage({ title: 'cloud console', body: './index.html', scripts: ['/console/console.js', '/console/anchors.js'] })
  app.get('/', async (_req, reply) => secureReply(reply, 'text/html; charset=utf-8').send(index))
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = readFileSync(new URL(`../console/${file}`, import.meta.url))
    app.get(path, async (_req, reply) => secureReply(reply, type).send(body))
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
