/** docs/protocol.md stays true: its examples validate and its tables match the code. */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseDeviceError } from '../../devices/sdk/client.ts'
import { validatePayload, type RejectionCode } from '../../shared/schema/reading.ts'
import { VITALS, VITAL_TYPES } from '../../shared/schema/vitals.ts'

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8')
const jsonBlocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!)
const NOW = Date.parse('2026-11-25T10:00:05Z')

describe('docs/protocol.md', () => {
  it('payload examples are accepted whole by the gateway validator', () => {
    const payloads = jsonBlocks.filter((b) => b.includes('"type"'))
    expect(payloads.length).toBeGreaterThanOrEqual(2)
    for (const p of payloads) {
      const v = validatePayload(Buffer.from(p), { now: NOW })
      expect(v.rejected).toEqual([])
      expect(v.accepted.length).toBe(p.trim().startsWith('[') ? (JSON.parse(p) as unknown[]).length : 1)
    }
  })

  it('the error message example is what the reference client parses', () => {
    const err = jsonBlocks.find((b) => b.includes('"code"'))!
    expect(parseDeviceError(Buffer.from(err))).toMatchObject({ seq: 42, code: 'IMPLAUSIBLE_VALUE' })
  })

  it('the type table matches shared/schema/vitals.ts', () => {
    for (const t of VITAL_TYPES) {
      const s = VITALS[t]
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${t}\` |`))
      expect(row, t).toBeDefined()
      const cells = row!.split('|').map((c) => c.trim())
      expect(cells[3]).toBe(`\`${s.unit}\``)
      expect(cells[4]).toBe(s.loinc)
      expect(cells[5]).toBe(String(s.mdc))
      expect(cells[6]!.replace('−', '-')).toBe(`${s.min} – ${s.max}`)
    }
  })

  it('documents every rejection code', () => {
    // A Record over the union: adding a RejectionCode without documenting it fails typechecking here.
    const codes: Record<RejectionCode, true> = { PAYLOAD_TOO_LARGE: true, MALFORMED_JSON: true, TOO_MANY_READINGS: true, SCHEMA: true, UNKNOWN_TYPE: true, WRONG_UNIT: true, IMPLAUSIBLE_VALUE: true, BAD_TIMESTAMP: true, FUTURE_TIMESTAMP: true }
    for (const c of Object.keys(codes)) expect(doc).toContain(`| \`${c}\` |`)
    expect(doc).toContain('## Cloud HTTP API')
  })
})
