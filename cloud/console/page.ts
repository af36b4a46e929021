/**
 * What every console page shares: the document head (charset, viewport, title, the console's
 * styles, module scripts) and the security headers it is served with. Each page's file
 * (index.html, doctor.html, regulator.html) holds only its <body>; `consolePage` wraps it.
 *
 * The pages hold no data, so they are served without a credential; everything shown comes from
 * the guarded API. The Content-Security-Policy allows only same-origin scripts, styles and fetches
 * (no inline script, no framing; images also as data: URLs for the charts).
 */
import { readFileSync } from 'node:fs'
import type { FastifyReply } from 'fastify'

export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** Sends with the console's security headers. */
export const secureReply = (reply: FastifyReply, type: string): FastifyReply =>
  reply.type(type).header('content-security-policy', CONSOLE_CSP).header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY')

export interface ConsolePage {
  /** "cloud console", "doctor view", … (the title is "CareLedger — <title>"). */
  readonly title: string
  /** The page's body markup: a file in cloud/console/. */
  readonly body: string
  /** Stylesheets after /console/console.css. */
  readonly styles?: readonly string[]
  readonly scripts: readonly string[]
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot' })[c]};`)

export function consolePage(p: ConsolePage): string {
  const body = readFileSync(new URL(p.body, import.meta.url), 'utf8').trim()
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '  <meta charset="utf-8">',
    '  <meta name="viewport" content="width=device-width, initial-scale=1">',
    `  <title>CareLedger — ${escape(p.title)}</title>`,
    ...['/console/console.css', ...(p.styles ?? [])].map((s) => `  <link rel="stylesheet" href="${escape(s)}">`),
    ...p.scripts.map((s) => `  <script type="module" src="${escape(s)}"></script>`),
    '</head>',
    body,
    '</html>',
    '',
  ].join('\n')
}
