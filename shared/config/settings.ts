/**
 * Configuration from CLI flags > environment variables > embedded defaults, shared by the gateway
 * (gateway/config.ts) and the cloud (cloud/config.ts): each declares its SETTINGS and a zod schema
 * over the raw values; this module resolves where every value comes from and turns schema errors
 * into one CareLedgerError('INVALID_ARGUMENT') that names the flag or variable. An empty
 * environment variable counts as unset.
 */
import { resolve } from 'node:path'
import type { z } from 'zod'
import { CareLedgerError } from '../errors.ts'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** One configurable value: where it comes from and how it is documented. */
export interface Setting {
  /** Dotted path in the raw object handed to the schema, e.g. 'mqtt.port'. */
  readonly path: string
  readonly env: string
  /** commander flag spelling, e.g. '--mqtt-port <port>'. */
  readonly flag: string
  /** Property name commander gives the flag (camelCase). */
  readonly option: string
  readonly default: string | undefined
  readonly doc: string
}

/** Where a value came from, for error messages and the `config` commands. */
export type Source = { kind: 'flag'; name: string } | { kind: 'env'; name: string } | { kind: 'default' }

export type Env = Readonly<Record<string, string | undefined>>

/** The raw values (strings, at their dotted paths) and their sources. A repeated flag arrives as a list and is joined with commas. */
export function resolveSettings(settings: readonly Setting[], flags: Readonly<Record<string, unknown>>, env: Env): { raw: Record<string, unknown>; sources: Record<string, Source> } {
  const raw: Record<string, unknown> = {}
  const sources: Record<string, Source> = {}
  for (const s of settings) {
    const flag = flags[s.option]
    const envValue = env[s.env]
    let value: string | undefined
    let source: Source
    if (flag !== undefined) {
      value = Array.isArray(flag) ? flag.join(',') : String(flag)
      source = { kind: 'flag', name: s.flag.split(' ')[0]! }
    } else if (envValue !== undefined && envValue !== '') {
      value = envValue
      source = { kind: 'env', name: s.env }
    } else {
      value = s.default
      source = { kind: 'default' }
    }
    sources[s.path] = source
    if (value !== undefined) setPath(raw, s.path, value)
  }
  return { raw, sources }
}

/** Validate the raw values; on failure, one INVALID_ARGUMENT listing each problem as `<flag or variable>=<value>: <why>`. */
export function parseSettings<S extends z.ZodType>(what: string, schema: S, settings: readonly Setting[], raw: Record<string, unknown>, sources: Readonly<Record<string, Source>>): z.infer<S> {
  const parsed = schema.safeParse(raw)
  if (parsed.success) return parsed.data
  const problems = parsed.error.issues.map((issue) => {
    const at = issue.path.filter((p) => typeof p === 'string').join('.')
    const setting = settings.find((s) => s.path === at || at.startsWith(`${s.path}.`))
    if (!setting) return `${at}: ${issue.message}`
    const src = sources[setting.path]!
    const where = src.kind === 'default' ? `default of ${setting.env}` : src.name
    return `${where}=${JSON.stringify(getPath(raw, setting.path) ?? null)}: ${issue.message}`
  })
  throw new CareLedgerError('INVALID_ARGUMENT', `invalid ${what} configuration: ${problems.join('; ')}`, { problems })
}

/** The Markdown table of a SETTINGS list (for docs/operations.md). */
export function settingsTable(settings: readonly Setting[]): string {
  const rows = settings.map((s) => `| \`${s.env}\` | \`${s.flag}\` | ${s.default ? `\`${s.default}\`` : '(none)'} | ${s.doc} |`)
  return ['| variable | flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n')
}

/** One directory setting alone (flag > variable > default), resolved; for commands that need only the data directory. */
export function resolveDirSetting(s: Setting, flag: string | undefined, env: Env): string {
  const value = flag ?? (env[s.env] || s.default!)
  if (!value.trim()) throw new CareLedgerError('INVALID_ARGUMENT', `${flag !== undefined ? s.flag.split(' ')[0] : s.env} must not be empty`, {})
  return resolve(value)
}

export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur = obj
  for (const k of keys.slice(0, -1)) cur = (cur[k] ??= {}) as Record<string, unknown>
  cur[keys.at(-1)!] = value
}

export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj
  for (const k of path.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k]
  return cur
}
