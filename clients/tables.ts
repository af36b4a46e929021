/** CSV lines (RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled). */
const field = (v: string | number | null): string => {
  const s = v === null ? '' : String(v)
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

export const csvLine = (fields: readonly (string | number | null)[]): string => fields.map(field).join(',')
