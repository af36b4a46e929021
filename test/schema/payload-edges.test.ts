/**
 * The device payload validator at its edges (issue 8, items 1, 9, 17): nesting depth, repeated
 * names, invalid UTF-8, a byte order mark, a missing `hz`, and strict RFC 3339 timestamps.
 * Pure: the same function the gateway runs on every PUBLISH (shared/schema/reading.ts).
 */
import { describe, expect, it } from 'vitest'
import { checkJsonText, MAX_JSON_DEPTH } from '../../shared/schema/json-text.ts'
import { validatePayload } from '../../shared/schema/reading.ts'
import { parseRfc3339 } from '../../shared/schema/timestamp.ts'

const NOW = Date.parse('2026-11-25T10:00:05Z')
const judge = (text: string | Uint8Array) => validatePayload(typeof text === 'string' ? Buffer.from(text) : text, { now: NOW })
const hr = (seq: number, extra = '') => `{"seq":${seq},"ts":"2026-11-25T10:00:00Z","type":"heart_rate","unit":"/min","value":72${extra}}`

describe('nesting depth (item 1)', () => {
  it('refuses thousands of nested arrays or objects as SCHEMA without throwing', () => {
    for (const [open, close] of [['[', ']'], ['{"a":', '}']] as const) {
      const text = open.repeat(5000) + '1' + close.repeat(5000)
      const v = judge(text)
      expect(v.accepted).toEqual([])
      expect(v.rejected).toHaveLength(1)
      expect(v.rejected[0]).toMatchObject({ seq: null, code: 'SCHEMA' })
      expect(v.rejected[0]!.message).toContain(`deeper than ${MAX_JSON_DEPTH} levels`)
      expect(v.rejected[0]!.raw.length).toBeLessThanOrEqual(513)
    }
  })

  it('refuses deep nesting hidden inside a reading, and inside a string it is only text', () => {
    expect(judge(`[${hr(1, `,"x":${'['.repeat(3000)}${']'.repeat(3000)}`)}]`).rejected[0]).toMatchObject({ code: 'SCHEMA', seq: null })
    const inString = judge(hr(2, `,"x":"${'['.repeat(3000)}"`))
    expect(inString.rejected[0]).toMatchObject({ seq: 2, code: 'SCHEMA' }) // the unknown key "x", judged normally
  })

  it('accepts the three levels a payload needs, and up to the limit', () => {
    const ecg = '[{"seq":1,"ts":"2026-11-25T10:00:00Z","type":"ecg","unit":"mV","hz":250,"samples":[0.1,0.2]}]'
    expect(judge(ecg).accepted).toHaveLength(1)
    expect(checkJsonText('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))).toEqual([])
    expect(checkJsonText('['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1))[0]!.reason).toBe('DEPTH')
  })
})

describe('repeated names (item 17)', () => {
  it('refuses a single reading with a repeated name as SCHEMA, seq null', () => {
    const v = judge(hr(5, ',"value":73'))
    expect(v.accepted).toEqual([])
    expect(v.rejected).toEqual([expect.objectContaining({ seq: null, code: 'SCHEMA' })])
    expect(v.rejected[0]!.message).toContain('"value" appears twice')
  })

  it('compares names after unescaping ("seq" and "s\\u0065q")', () => {
    const v = judge('{"seq":1,"s\\u0065q":2,"ts":"2026-11-25T10:00:00Z","type":"heart_rate","unit":"/min","value":72}')
    expect(v.rejected[0]).toMatchObject({ code: 'SCHEMA', seq: null })
    expect(v.rejected[0]!.message).toContain('"seq" appears twice')
  })

  it('inside an array, refuses only the reading that repeats a name', () => {
    const v = judge(`[${hr(1)},${hr(2, ',"unit":"/min"')},${hr(3)}]`)
    expect(v.accepted.map((r) => r.seq)).toEqual([1, 3])
    expect(v.rejected).toEqual([expect.objectContaining({ seq: null, code: 'SCHEMA' })])
    expect(v.rejected[0]!.message).toMatch(/^reading 1: the name "unit" appears twice/)
  })

  it('the same name in two different objects is fine', () => {
    expect(judge(`[${hr(1)},${hr(2)}]`).accepted).toHaveLength(2)
  })
})

describe('encoding (item 17)', () => {
  it('answers MALFORMED_JSON for invalid UTF-8 instead of substituting characters', () => {
    const good = Buffer.from(hr(7, ',"x":"é"'))
    const bad = Buffer.concat([good.subarray(0, good.length - 4), Buffer.from([0xc3, 0x28]), good.subarray(good.length - 2)])
    const v = judge(bad)
    expect(v.accepted).toEqual([])
    expect(v.rejected[0]).toMatchObject({ seq: null, code: 'MALFORMED_JSON' })
    expect(v.rejected[0]!.message).toContain(`invalid UTF-8 at byte ${good.length - 3}`) // 0xc3 may start a sequence; 0x28 cannot continue it
    // Overlong encodings and lone surrogates are invalid UTF-8 too (RFC 3629 §3).
    expect(judge(Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])).rejected[0]!.code).toBe('MALFORMED_JSON')
    expect(judge(Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])).rejected[0]!.code).toBe('MALFORMED_JSON')
  })

  it('refuses a byte order mark (RFC 8259 §8.1)', () => {
    const v = judge(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(hr(8))]))
    expect(v.rejected[0]).toMatchObject({ seq: null, code: 'MALFORMED_JSON' })
  })

  it('accepts valid multi-byte UTF-8 where strings are allowed (then judged by the schema)', () => {
    expect(judge(hr(9, ',"ü":"✓"')).rejected[0]).toMatchObject({ seq: 9, code: 'SCHEMA' })
  })
})

describe('ECG hz (item 17)', () => {
  it('a missing hz is SCHEMA; an out-of-range hz is IMPLAUSIBLE_VALUE', () => {
    const ecg = (hz: string) => `{"seq":3,"ts":"2026-11-25T10:00:00Z","type":"ecg","unit":"mV","samples":[0.1]${hz}}`
    expect(judge(ecg('')).rejected[0]).toMatchObject({ seq: 3, code: 'SCHEMA', message: 'ecg needs "hz", the sampling rate in Hz' })
    expect(judge(ecg(',"hz":10')).rejected[0]).toMatchObject({ seq: 3, code: 'IMPLAUSIBLE_VALUE' })
    expect(judge(ecg(',"hz":250')).accepted).toHaveLength(1)
  })
})

describe('RFC 3339 timestamps (item 9)', () => {
  const ms = (s: string) => {
    const v = parseRfc3339(s)
    return 'ms' in v ? v.ms : v.problem
  }

  it('refuses impossible calendar dates instead of rolling them over', () => {
    expect(ms('2026-02-30T10:00:00Z')).toBe('has day 30: February 2026 has 28 days')
    expect(ms('2026-02-29T10:00:00Z')).toBe('has day 29: February 2026 has 28 days')
    expect(ms('2100-02-29T10:00:00Z')).toMatch(/February 2100 has 28 days/) // divisible by 100, not by 400
    expect(ms('2028-02-29T10:00:00Z')).toBe(Date.UTC(2028, 1, 29, 10))
    expect(ms('2000-02-29T10:00:00Z')).toBe(Date.UTC(2000, 1, 29, 10)) // divisible by 400
    expect(ms('2026-04-31T10:00:00Z')).toMatch(/April 2026 has 30 days/)
    expect(ms('2026-13-01T10:00:00Z')).toMatch(/month 13/)
    expect(ms('2026-00-10T10:00:00Z')).toMatch(/month 00/)
    expect(ms('2026-01-00T10:00:00Z')).toMatch(/day 00/)
    expect(ms('2026-01-01T24:00:00Z')).toMatch(/hour 24/)
    expect(ms('2026-01-01T10:60:00Z')).toMatch(/minute 60/)
    expect(ms('2026-01-01T10:00:61Z')).toMatch(/second 61/)
  })

  it('checks offsets, and applies them', () => {
    expect(ms('2026-11-25T11:00:00+01:00')).toBe(Date.UTC(2026, 10, 25, 10))
    expect(ms('2026-11-25T05:30:00-04:30')).toBe(Date.UTC(2026, 10, 25, 10))
    expect(ms('2026-11-25T10:00:00-00:00')).toBe(Date.UTC(2026, 10, 25, 10))
    expect(ms('2026-11-25T10:00:00+24:00')).toMatch(/offset \+24:00/)
    expect(ms('2026-11-25T10:00:00+01:60')).toMatch(/offset \+01:60/)
    expect(ms('2026-11-25T10:00:00+0100')).toMatch(/not an RFC 3339/)
    expect(ms('2026-11-25T10:00:00')).toMatch(/time zone.*is required/)
  })

  it('accepts a leap second only at 23:59:60 UTC on the last day of a month, as 23:59:59.999', () => {
    expect(ms('2016-12-31T23:59:60Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999))
    expect(ms('2016-12-31T23:59:60.5Z')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999))
    expect(ms('2015-06-30T23:59:60Z')).toBe(Date.UTC(2015, 5, 30, 23, 59, 59, 999))
    expect(ms('2017-01-01T00:59:60+01:00')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999)) // the same instant in Paris
    expect(ms('2016-12-31T18:59:60-05:00')).toBe(Date.UTC(2016, 11, 31, 23, 59, 59, 999))
    expect(ms('2026-11-25T10:00:60Z')).toMatch(/second 60, which exists only as 23:59:60 UTC/)
    expect(ms('2016-12-30T23:59:60Z')).toMatch(/second 60/)
    expect(ms('2016-12-31T23:59:60+01:00')).toMatch(/second 60/) // 22:59:60 UTC
  })

  it('one spelling: T or t, Z or z; a space is refused; fractions are cut to milliseconds', () => {
    expect(ms('2026-11-25t10:00:00z')).toBe(Date.UTC(2026, 10, 25, 10))
    expect(ms('2026-11-25 10:00:00Z')).toMatch(/a space instead of "T" is not accepted/)
    expect(ms('2026-11-25T10:00:00.123999999Z')).toBe(Date.UTC(2026, 10, 25, 10, 0, 0, 123))
    expect(ms('2026-11-25T10:00:00.1Z')).toBe(Date.UTC(2026, 10, 25, 10, 0, 0, 100))
    expect(ms('2026-11-25T10:00:00.Z')).toMatch(/not an RFC 3339/)
    expect(ms('2026-11-25T10:00:00.1234567890Z')).toMatch(/not an RFC 3339/)
    expect(new Date(ms('0099-01-01T00:00:00Z') as number).getUTCFullYear()).toBe(99) // not 1999 (Date.UTC maps 0–99 to 19xx)
  })

  it('the validator answers BAD_TIMESTAMP naming the problem (2026-02-30 is not stored as 2 March)', () => {
    const v = judge('{"seq":11,"ts":"2026-02-30T10:00:00Z","type":"heart_rate","unit":"/min","value":72}')
    expect(v.accepted).toEqual([])
    expect(v.rejected[0]).toMatchObject({ seq: 11, code: 'BAD_TIMESTAMP', message: 'ts "2026-02-30T10:00:00Z" has day 30: February 2026 has 28 days' })
    expect(judge('{"seq":12,"ts":"2026-11-25 10:00:00Z","type":"heart_rate","unit":"/min","value":72}').rejected[0]).toMatchObject({ seq: 12, code: 'BAD_TIMESTAMP' })
  })
})

describe('cost stays linear in the payload', () => {
  it('an object with 40,000 names, one repeated at the end, is checked without quadratic work', () => {
    const names = Array.from({ length: 40_000 }, (_, i) => `"k${i}":1`).join(',')
    const problems = checkJsonText(`{${names},"k7":2}`)
    expect(problems).toEqual([expect.objectContaining({ reason: 'DUPLICATE_KEY', item: null })])
    expect(problems[0]!.message).toContain('"k7" appears twice')
  })
})
