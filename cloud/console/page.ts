/**
 * What every console page shares: the document head (charset, viewport, title, the console's
 * styles, module scripts), the signed-in views' top bar (title and token form, #token-form, and the
 * #message status line), and the security headers it is served with. Each page's file
 * (index.html, doctor.html, regulator.html) holds only the inside of its <body>; `consolePage` wraps it.
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
  /** The token form's label ("Doctor token"): the page gets the views' top bar and status line. */
  readonly tokenLabel?: string
}

const topBar = (title: string, label: string): string[] => [
  '  <header class="top">',
  `    <h1>CareLedger <span class="sub">${escape(title)}</span></h1>`,
  '    <form id="token-form" autocomplete="off">',
  `      <label for="token">${escape(label)}</label>`,
  '      <input id="token" name="token" type="password" placeholder="clt_…" spellcheck="false" required>',
  '      <button type="submit">Use</button>',
  '      <span id="token-state"></span>',
  '    </form>',
  '  </header>',
  '  <p id="message" role="status" aria-live="polite"></p>',
]

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot' })[c]};`)

export function consolePage(p: ConsolePage): string {
  const body = readFileSync(new URL(p.body, import.meta.url), 'utf8').replace(/^ {2}/gm, '')
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
    '<body>',
    ...(p.tokenLabel ? topBar(p.title, p.tokenLabel) : []),
    body.replace(/^(?!$)/gm, '  ').trimEnd(),
    '</body>',
    '</html>',
    '',
  ].join('\n')
}
