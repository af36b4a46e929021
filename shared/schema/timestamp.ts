/**
 * Strict RFC 3339 date-times for a reading's `ts` (docs/protocol.md §Timestamps). Pure.
 *
 * The one rule: `YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)` (RFC 3339 §5.6 `date-time`, `T`/`Z` in
 * either case), and every field must name an instant that exists:
 *
 *   - month 01–12, day 01 up to the month's length in the proleptic Gregorian calendar (§5.7: the
 *     29th of February only in leap years) — `Date.parse` would roll 2026-02-30 over to March 2;
 *   - hour 00–23, minute 00–59, second 00–59; offset hour 00–23, offset minute 00–59 (§5.6
 *     `time-numoffset`); `-00:00` is UTC;
 *   - second 60 (a leap second, §5.7) only where one can be inserted: 23:59:60 UTC on the last
 *     day of a month, after the offset is applied. Epoch milliseconds have no leap seconds
 *     (POSIX time), so it is stored as 23:59:59.999 UTC of that day: the reading keeps its date and
 *     its order among that day's readings;
 *   - a fraction of 1–9 digits is cut (not rounded) to milliseconds;
 *   - a space instead of `T` (which §5.6 allows "by mutual consent") is refused: this protocol does
 *     not consent, so one instant has one spelling.
 */

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/

export type TimestampVerdict = { readonly ms: number } | { readonly problem: string }

const isLeapYear = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
export const daysInMonth = (y: number, m: number): number => (m === 2 ? (isLeapYear(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31)
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

/** Epoch ms of a UTC calendar time (years 0000–9999; Date.UTC alone maps years 0–99 to 1900–1999). */
function utcMs(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): number {
  if (y >= 100) return Date.UTC(y, mo - 1, d, h, mi, s, ms)
  const t = new Date(0)
  t.setUTCFullYear(y, mo - 1, d)
  t.setUTCHours(h, mi, s, ms)
  return t.getTime()
}

/** Parse an RFC 3339 date-time to epoch milliseconds, or say exactly what is wrong with it. */
export function parseRfc3339(text: string): TimestampVerdict {
  const m = DATE_TIME.exec(text)
  if (!m) {
    const hint = /^\d{4}-\d{2}-\d{2} \d/.test(text) ? ' (a space instead of "T" is not accepted)' : /^\d{4}-\d{2}-\d{2}[Tt][\d:.]+$/.test(text) ? ' (the time zone, "Z" or ±hh:mm, is required)' : ''
    return { problem: `is not an RFC 3339 date-time YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)${hint}` }
  }
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]))
  const frac = m[7] ?? ''
  const ms = Number(frac.padEnd(3, '0').slice(0, 3))
  if (mo! < 1 || mo! > 12) return { problem: `has month ${m[2]} (01–12)` }
  const dim = daysInMonth(y!, mo!)
  if (d! < 1 || d! > dim) return { problem: `has day ${m[3]}: ${MONTHS[mo! - 1]} ${m[1]} has ${dim} days` }
  if (h! > 23) return { problem: `has hour ${m[4]} (00–23)` }
  if (mi! > 59) return { problem: `has minute ${m[5]} (00–59)` }
  if (s! > 60) return { problem: `has second ${m[6]} (00–59, or 60 for a leap second)` }
  let offsetMin = 0
  if (!m[8]) {
    const [oh, om] = [Number(m[10]), Number(m[11])]
    if (oh > 23 || om > 59) return { problem: `has offset ${m[9]}${m[10]}:${m[11]} (hours 00–23, minutes 00–59)` }
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om)
  }
  if (s === 60) {
    // Leap second: legal only as 23:59:60 UTC on a month's last day (RFC 3339 §5.7).
    const at59 = utcMs(y!, mo!, d!, h!, mi!, 59, 0) - offsetMin * 60_000
    const u = new Date(at59)
    if (u.getUTCHours() !== 23 || u.getUTCMinutes() !== 59 || u.getUTCDate() !== daysInMonth(u.getUTCFullYear(), u.getUTCMonth() + 1)) {
      return { problem: 'has second 60, which exists only as 23:59:60 UTC on the last day of a month (a leap second, RFC 3339 §5.7)' }
    }
    return { ms: at59 + 999 }
  }
  return { ms: utcMs(y!, mo!, d!, h!, mi!, s!, ms) - offsetMin * 60_000 }
}
