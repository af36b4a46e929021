/**
 * The console's doctor view (GET /doctor): search a patient's records, verify them and decrypt
 * them in the browser with a key file that never leaves the page, and plot the vital signs over
 * time with the normal ranges shaded. The same pipeline as `careledger access read`
 * (clients/retrieve.ts, verify.ts, decrypt.ts and shared/crypto), bundled for the browser by
 * esbuild (cloud/console/bundle.ts); blocks come from the cloud's trustless gateway, each checked
 * against its CID here. The key file is read with the File API into this page's memory only: it is
 * never stored and never sent (the only requests are GETs of evidence and blocks).
 *
 * Escaping: values reach the page as text nodes only (no innerHTML); the page's CSP forbids inline
 * script.
 */
import uPlot from 'uplot'
import { decodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { CareLedgerError, isCareLedgerError } from '../../shared/errors.ts'
import { assertKeyValid, keyValidity } from '../../shared/protocol/epoch.ts'
import { DEFAULT_LATENESS_MS, DEFAULT_SKEW_MS } from '../../shared/protocol/evidence.ts'
import { rawCid } from '../../shared/protocol/car.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { CloudApi } from '../cloud-api.ts'
import { LocalOpener } from '../decrypt.ts'
import { retrieve, type BlockSource, type Retrieval, type TrustStore } from '../retrieve.ts'
import { RetrievalError, type KnownHead } from '../verify.ts'
import { $, h, say, tokenForm } from './dom.ts'

const TOKEN_KEY = 'careledger.doctor.token'
const HEAD_KEY = 'careledger.doctor.head'

/** Normal adult ranges shaded behind each series (a display aid, not an alarm threshold). */
export const PANELS: readonly { id: string; title: string; unit: string; types: readonly VitalType[]; normal: readonly [number, number][] }[] = [
  { id: 'hr', title: 'Heart rate', unit: '/min', types: ['heart_rate'], normal: [[60, 100]] },
  { id: 'spo2', title: 'SpO₂', unit: '%', types: ['spo2'], normal: [[95, 100]] },
  { id: 'rr', title: 'Respiratory rate', unit: '/min', types: ['resp_rate'], normal: [[12, 20]] },
  { id: 'temp', title: 'Temperature', unit: '°C', types: ['body_temp'], normal: [[36.1, 37.2]] },
  { id: 'bp', title: 'Blood pressure', unit: 'mmHg', types: ['bp_systolic', 'bp_diastolic'], normal: [[90, 120], [60, 80]] },
]
const COLORS = ['#0b5cad', '#a1141b']


/** Blocks from the cloud's trustless gateway, each checked against its CID before use. */
const gatewayBlocks = (token: string): BlockSource => ({
  async get(cid: string): Promise<Uint8Array> {
    const res = await fetch(`/ipfs/${cid}?format=raw`, { headers: { accept: 'application/vnd.ipld.raw', authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) })
    if (!res.ok) throw new Error(`the cloud answered ${res.status} for block ${cid}`)
    const bytes = new Uint8Array(await res.arrayBuffer())
    const got = (await rawCid(bytes)).toString()
    if (got !== cid) throw new CareLedgerError('VERIFICATION_FAILED', `block ${cid} was answered with bytes that hash to ${got}`, { reason: 'BLOCK_MISMATCH' })
    return bytes
  },
})

/** The newest verified head, per browser (localStorage): a later answer behind it is refused as stale. */
const browserTrust = (): TrustStore => ({
  signingKey: () => {
    const s = localStorage.getItem(HEAD_KEY)
    return s ? Uint8Array.from((JSON.parse(s) as { signingKey: string }).signingKey.match(/../g)!.map((x) => parseInt(x, 16))) : null
  },
  knownHeads: (): KnownHead[] => {
    const s = localStorage.getItem(HEAD_KEY)
    return s ? [(JSON.parse(s) as { head: KnownHead }).head] : []
  },
  remember: (head, signingKey) => {
    const prev = localStorage.getItem(HEAD_KEY)
    if (prev && (JSON.parse(prev) as { head: KnownHead }).head.height > head.height) return
    localStorage.setItem(HEAD_KEY, JSON.stringify({ head, signingKey: Array.from(signingKey, (b) => b.toString(16).padStart(2, '0')).join('') }))
  },
})

let key: UserKey | null = null
const charts: uPlot[] = []

async function loadKey(file: File): Promise<void> {
  key = null
  try {
    const k = decodeUserKey(new Uint8Array(await file.arrayBuffer()))
    const v = keyValidity(k.attributes)
    key = k
    $('key-status').textContent = `key for ${k.attributes.filter((a) => !a.startsWith('epoch:')).join(', ')}${v ? `, valid ${v.from} … ${v.until} (UTC)` : ''} — kept in this page only`
  } catch (e) {
    $('key-status').textContent = `not a CareLedger attribute key: ${(e as Error).message}`
  }
}

function plot(r: Retrieval): void {
  for (const c of charts.splice(0)) c.destroy()
  const host = $('charts')
  host.replaceChildren()
  const readings = r.batches.flatMap((b) => b.readings)
  for (const p of PANELS) {
    const series = p.types.map((t) => readings.filter((x) => x.type === t && typeof x.value === 'number').sort((a, b) => a.ts - b.ts))
    if (series.every((s) => s.length === 0)) continue
    const xs = [...new Set(series.flat().map((x) => x.ts / 1000))].sort((a, b) => a - b)
    const data: (number | null)[][] = [xs, ...series.map((s) => {
      const at = new Map(s.map((x) => [x.ts / 1000, x.value!]))
      return xs.map((x) => at.get(x) ?? null)
    })]
    const box = h('figure', 'chart', h('figcaption', null, `${p.title} (${p.unit}) — normal range shaded`))
    box.dataset.panel = p.id
    host.append(box)
    const bands = p.normal
    const chart = new uPlot(
      {
        width: Math.min(1100, host.clientWidth || 1100),
        height: 190,
        scales: {
          x: { time: true },
          // Always show the whole normal range beside the readings.
          y: { range: (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => {
            const lo = Math.min(min, ...bands.map((b) => b[0]))
            const hi = Math.max(max, ...bands.map((b) => b[1]))
            const pad = (hi - lo) * 0.08 || 1
            return [lo - pad, hi + pad]
          } },
        },
        axes: [{}, { label: p.unit }],
        series: [{}, ...p.types.map((t, i) => ({ label: VITALS[t].display, stroke: COLORS[i], width: 1.5, spanGaps: true }))],
        hooks: {
          // The normal ranges, drawn under the series.
          drawClear: [
            (u: uPlot) => {
              const ctx = u.ctx
              ctx.save()
              ctx.beginPath()
              ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height)
              ctx.clip()
              bands.forEach(([lo, hi], i) => {
                const top = u.valToPos(hi, 'y', true)
                const bottom = u.valToPos(lo, 'y', true)
                ctx.fillStyle = i === 0 ? 'rgba(23, 102, 58, 0.13)' : 'rgba(11, 92, 173, 0.10)'
                ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top)
              })
              ctx.restore()
            },
          ],
        },
      },
      data as uPlot.AlignedData,
      box,
    )
    charts.push(chart)
  }
}

function report(r: Retrieval): void {
  const opened = r.batches.filter((b) => b.status === 'opened')
  const refused = r.batches.filter((b) => b.status === 'not-authorised')
  const n = opened.reduce((s, b) => s + b.readings.length, 0)
  $('summary').replaceChildren(
    h('span', 'badge ok', 'verified'),
    ` ${n} readings from ${opened.length} of ${r.batches.length} batches; ${r.streams.reduce((s, x) => s + x.records.length, 0)} records checked against block ${r.head?.height ?? '–'} (${r.head?.hash.slice(0, 16) ?? ''}…); every ciphertext matched its CID.`,
  )
  $('refused').replaceChildren(
    ...refused.map((b) => h('li', null, `record ${b.recordId} (${b.manifest.device} #${b.manifest.seq}, ${new Date(b.manifest.from).toISOString()} … ${new Date(b.manifest.to).toISOString()}): not authorised by policy "${b.manifest.policy}"`)),
    // Verified redactions: corrected batches are plotted in their corrected form; deleted ones are tombstones.
    ...r.batches.filter((b) => b.redaction).map((b) => h('li', null, `record ${b.recordId} (${b.manifest.device} #${b.manifest.seq}): corrected by request ${b.redaction!.requestId.slice(0, 16)}… at ${new Date(b.redaction!.time).toISOString()}, reason "${b.redaction!.reason}", approved by ${b.redaction!.approvers.map((a) => a.name).join(', ')}`)),
    ...r.tombstones.map((t) => h('li', null, `record ${t.id} (#${t.seq}): deleted by request ${t.redaction.requestId.slice(0, 16)}… at ${new Date(t.redaction.time).toISOString()}, reason "${t.redaction.reason}", approved by ${t.redaction.approvers.map((a) => a.name).join(', ')}`)),
    ...r.warnings.map((w) => h('li', 'warn', `${w.kind}: ${w.message}`)),
  )
  plot(r)
}

async function read(ev: Event): Promise<void> {
  ev.preventDefault()
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (!token) return say('Enter your doctor token first.', true)
  if (!key) return say('Choose your key file first (it stays in this page).', true)
  const patient = ($('patient') as HTMLInputElement).value.trim()
  const from = Date.parse(($('from') as HTMLInputElement).value + 'Z')
  const to = Date.parse(($('to') as HTMLInputElement).value + 'Z')
  if (!/^p-[0-9a-f]{24}$/.test(patient)) return say('Patient: a pseudonym p- followed by 24 hex digits.', true)
  if (!Number.isFinite(from) || !Number.isFinite(to) || from > to) return say('From and To: a time range (UTC), From before To.', true)
  try {
    assertKeyValid(key.attributes, Date.now())
  } catch (e) {
    return say((e as Error).message, true)
  }
  say('verifying and decrypting…')
  $('read').setAttribute('disabled', '')
  try {
    const r = await retrieve({
      query: { patient, types: null, from, to, lateness: DEFAULT_LATENESS_MS, skew: DEFAULT_SKEW_MS },
      evidence: new CloudApi({ url: location.origin, token }),
      blocks: gatewayBlocks(token),
      trust: browserTrust(),
      decryptor: { kind: 'local', attributes: key.attributes, opener: new LocalOpener(key) },
      allowGaps: true,
    })
    say('')
    report(r)
  } catch (e) {
    if (e instanceof RetrievalError) say(`The cloud's answer does not verify — nothing is shown. ${e.failures.map((f) => `${f.kind}: ${f.message}`).join(' · ')}`, true)
    else say(isCareLedgerError(e) ? e.message : `failed: ${(e as Error).message}`, true)
  } finally {
    $('read').removeAttribute('disabled')
  }
}

function start(): void {
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16)
  ;($('from') as HTMLInputElement).value = iso(Date.now() - 3600_000)
  ;($('to') as HTMLInputElement).value = iso(Date.now() + 60_000)
  tokenForm(TOKEN_KEY)
  $('key').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0]
    if (f) void loadKey(f)
  })
  $('search').addEventListener('submit', (ev) => void read(ev))
}

start()
