/**
 * Log lines that a stranger cannot inflate. MQTT lets a client send a 65,535-byte user name, client
 * id or topic; quoted whole, one refused CONNECT became a 120 KB log line (issue 8, item 5), and the
 * logs go to balenaCloud. Every string in a gateway log line — fields and message — is cut to
 * LOG_STRING_MAX characters, with the original length noted.
 */
import type { LoggerOptions } from 'pino'

export const LOG_STRING_MAX = 256

/** Cut an attacker-controlled string for a log line or an error message. */
export function clipForLog(s: string, max = LOG_STRING_MAX): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s
}

function clipDeep(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return clipForLog(v)
  if (depth >= 3 || v === null || typeof v !== 'object' || v instanceof Error) return v
  if (Array.isArray(v)) return v.slice(0, 32).map((x) => clipDeep(x, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = clipDeep(x, depth + 1)
  return out
}

/** pino options of the gateway's logger: base fields plus the clipping above. */
export function gatewayLogOptions(level: string, base: Record<string, unknown>): LoggerOptions {
  return {
    level,
    base,
    formatters: { log: (o) => clipDeep(o, 0) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? clipForLog(a, 1024) : a)) as Parameters<typeof method>)
      },
    },
  }
}
