// CareLedger cloud console. Plain browser JavaScript, no framework, no build step.
//
// Escaping: every value from the API reaches the page as a DOM text node (h() below turns strings
// into document.createTextNode, attributes go through setAttribute on a fixed list of names).
// Nothing is ever assigned to innerHTML, so a name, policy or message holding markup is shown as
// text. The page is also served with a Content-Security-Policy that forbids inline script.
//
// The admin token lives in sessionStorage (this tab only) and travels as Authorization: Bearer.

const TOKEN_KEY = 'careledger.console.token'
const STATS_EVERY_MS = 2000
const TABLES_EVERY_MS = 10000
const BLOCK_PAGE = 20

// ── DOM helpers ───────────────────────────────────────────────────────────────────────────────
const ATTRS = new Set(['class', 'id', 'title', 'type', 'role', 'aria-pressed', 'aria-label', 'data-height', 'data-record', 'datetime', 'colspan'])

/** h('td', {class: 'num'}, 'text', node, …): strings become text nodes, never markup. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'onclick') el.addEventListener('click', v)
    else if (ATTRS.has(k)) el.setAttribute(k, String(v))
    else throw new Error(`attribute ${k} is not allowed`)
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

const $ = (id) => document.getElementById(id)
export const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined))

export function when(ms) {
  if (ms === null || ms === undefined) return h('span', { class: 'none' }, 'never')
  const d = new Date(ms)
  const s = Math.round((Date.now() - ms) / 1000)
  const ago = s < 0 ? 'in the future' : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, ago)
}

export const short = (hex, n = 12) => h('code', { title: String(hex) }, String(hex).slice(0, n) + (String(hex).length > n ? '…' : ''))
const range = ([a, b]) => (a === b ? String(a) : `${a}–${b}`)
export const kv = (pairs) => h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)]))

function say(text) {
  $('message').textContent = text ?? ''
}

// ── API ───────────────────────────────────────────────────────────────────────────────────────
let token = sessionStorage.getItem(TOKEN_KEY)

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' })
  const body = await res.json().catch(() => null)
  if (!res.ok) {
    const err = body?.error ?? {}
    throw new ApiFailure(res.status, err.code ?? String(res.status), err.message ?? res.statusText)
  }
  return body
}

function failed(e, what) {
  if (e instanceof ApiFailure && (e.status === 401 || e.status === 403)) {
    signOut(e.status === 401 ? `The token was refused (${e.code}): ${e.message}` : `This token may not read the console (${e.message}); use an admin token.`)
    return
  }
  say(`Could not load ${what}: ${e.message}`)
}

// ── counters ──────────────────────────────────────────────────────────────────────────────────
async function loadStats() {
  const s = await api('/v1/stats')
  for (const el of document.querySelectorAll('[data-stat]')) {
    const v = s[el.dataset.stat]
    el.textContent = v === undefined || v === null ? '–' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v)
    el.parentElement.classList.toggle('alert', (el.dataset.stat === 'gaps' || el.dataset.stat === 'damagedEnvelopes') && v > 0)
  }
  if (s.height !== latestHeight) {
    const follow = blockCursor === null
    latestHeight = s.height
    if (follow) await loadBlocks(null)
  }
}

// ── verification ──────────────────────────────────────────────────────────────────────────────
async function loadVerification() {
  const box = $('verification-body')
  let v
  try {
    v = await api('/v1/chain/verification')
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 404) {
      box.className = 'panel'
      fill(box, h('span', { class: 'none' }, e.message))
      return
    }
    throw e
  }
  box.className = `panel ${v.ok ? 'ok' : 'bad'}`
  const failures = v.failures ?? []
  fill(
    box,
    kv([
      ['Result', h('span', { class: `badge ${v.ok ? 'ok' : 'bad'}` }, v.ok ? 'chain verified' : `${failures.length} failure(s)`)],
      ['Checked', when(v.checkedAt)],
      ['Blocks', String(v.blocks ?? '–')],
      ['Records', String(v.records ?? '–')],
    ]),
    failures.length ? h('ul', null, failures.slice(0, 50).map((f) => h('li', null, h('strong', null, f.kind ?? 'FAILURE'), ' ', f.message ?? JSON.stringify(f)))) : null,
  )
}

// ── envelope blockstore (scrub and repairs) ───────────────────────────────────────────────────
async function loadEnvelopes() {
  const box = $('envelopes-body')
  const e = await api('/v1/envelopes/damaged')
  const open = e.damaged.filter((d) => d.repairedAt === null)
  box.className = `panel ${open.length ? 'bad' : 'ok'}`
  const resend = (r) => (r ? `resend asked of ${r.gateway}: ${r.state}${r.detail ? ` (${r.detail})` : ''}` : 'no gateway to ask')
  fill(
    box,
    kv([
      ['Damaged now', h('span', { class: `badge ${open.length ? 'bad' : 'ok'}` }, open.length ? `${open.length} record(s)` : 'none')],
      ['Last scrub', e.lastScrub ? h('span', null, when(e.lastScrub.finishedAt), ` — ${e.lastScrub.checked} blocks re-hashed`) : h('span', { class: 'none' }, `not yet (every ${e.scrubIntervalS} s)`)],
    ]),
    e.damaged.length
      ? h('ul', null, e.damaged.slice(0, 50).map((d) => h('li', null, h('strong', null, d.repairedAt === null ? d.kind : 'REPAIRED'), ` record ${d.recordId} `, short(d.cid, 16), ' — ', d.repairedAt === null ? resend(d.resend) : d.repairedHow)))
      : null,
  )
}

// ── gateways ──────────────────────────────────────────────────────────────────────────────────
async function loadGateways() {
  const { gateways } = await api('/v1/gateways')
  const body = $('gateways-body')
  if (gateways.length === 0) return fill(body, h('tr', null, h('td', { colspan: 6, class: 'none' }, 'no gateway has registered yet (careledger cloud gateway invite --name …)')))
  fill(
    body,
    gateways.map((g) =>
      h(
        'tr',
        { class: g.revoked ? 'revoked' : null },
        h('td', null, g.name),
        h('td', null, short(g.gatewayId, 16)),
        h('td', null, when(g.registeredAt)),
        h('td', null, when(g.lastSyncAt)),
        h('td', { class: 'num' }, String(g.batches ?? 0)),
        h('td', null, h('span', { class: `badge ${g.revoked ? 'bad' : 'ok'}` }, g.revoked ? 'revoked' : 'active')),
      ),
    ),
  )
}

// ── streams ───────────────────────────────────────────────────────────────────────────────────
async function loadStreams() {
  const { streams } = await api('/v1/streams')
  const body = $('streams-body')
  if (streams.length === 0) return fill(body, h('tr', null, h('td', { colspan: 9, class: 'none' }, 'no batches received yet')))
  fill(
    body,
    streams.map((s) =>
      h(
        'tr',
        { class: s.gaps.length ? 'has-gap' : null, title: s.gaps.length ? `missing batches: ${s.gaps.map(range).join(', ')}` : null },
        h('td', null, short(s.stream, 12)),
        h('td', null, short(s.gateway, 16)),
        h('td', null, s.device),
        h('td', null, h('code', null, s.patient)),
        h('td', { class: 'num' }, String(s.batches)),
        h('td', { class: 'num' }, String(s.lastSeq)),
        h('td', null, s.ranges.map(range).join(', ')),
        h('td', null, s.gaps.length ? s.gaps.map((g) => h('mark', { class: 'gap', title: `batches ${range(g)} have not arrived` }, range(g))) : h('span', { class: 'none' }, 'none')),
        h('td', null, when(s.lastBatchAt)),
      ),
    ),
  )
}

// ── chain explorer ────────────────────────────────────────────────────────────────────────────
let latestHeight = null
/** Lowest height shown, or null to follow the newest blocks. */
let blockCursor = null
let selectedBlock = null

async function loadBlocks(top) {
  const list = $('blocks-list')
  if (latestHeight === null || latestHeight < 0) {
    fill(list, h('li', { class: 'none' }, 'no block sealed yet'))
    return
  }
  const high = top ?? latestHeight
  const low = Math.max(0, high - BLOCK_PAGE + 1)
  const { blocks } = await api(`/v1/blocks?after=${low - 1}&limit=${high - low + 1}`)
  blockCursor = top === null ? null : high
  fill(
    list,
    blocks
      .slice()
      .reverse()
      .map((b) =>
        h(
          'li',
          null,
          h(
            'button',
            { type: 'button', 'data-height': b.height, 'aria-pressed': String(b.height === selectedBlock), onclick: () => showBlock(b.height) },
            h('strong', null, `#${b.height}`),
            ` · ${b.count} record${b.count === 1 ? '' : 's'} · `,
            when(b.time),
          ),
        ),
      ),
  )
  $('blocks-older').disabled = low === 0
  $('blocks-newer').disabled = high >= latestHeight
  $('blocks-older').onclick = () => loadBlocks(low - 1).catch((e) => failed(e, 'blocks'))
  $('blocks-newer').onclick = () => {
    const next = high + BLOCK_PAGE
    loadBlocks(next >= latestHeight ? null : next).catch((e) => failed(e, 'blocks'))
  }
}

async function showBlock(height) {
  selectedBlock = height
  for (const b of document.querySelectorAll('#blocks-list button')) b.setAttribute('aria-pressed', String(Number(b.dataset.height) === height))
  const block = await api(`/v1/blocks/${encodeURIComponent(height)}`)
  const ids = block.records ?? []
  // A block holds consecutive record ids, so one page of /v1/records covers it.
  const { records } = ids.length ? await api(`/v1/records?after=${ids[0] - 1}&limit=${Math.min(ids.length, 500)}`) : { records: [] }
  const wanted = new Set(ids)
  fill(
    $('block-detail'),
    kv([
      ['Height', String(block.height)],
      ['Hash', short(block.hash, 24)],
      ['Previous', block.prev ? short(block.prev, 24) : h('span', { class: 'none' }, 'genesis')],
      ['Time', when(block.time)],
      ['Records root', short(block.recordsRoot, 24)],
      ['Records', `${block.count} (ids ${ids[0]}–${ids[ids.length - 1]})`],
      ['Signature', short(block.signature, 24)],
    ]),
    h(
      'ol',
      { class: 'list' },
      records
        .filter((r) => wanted.has(r.id))
        .map((r) =>
          h('li', null, h('button', { type: 'button', 'data-record': r.id, onclick: () => showRecord(r.id).catch((e) => failed(e, `record ${r.id}`)) }, `record ${r.id} · ${r.device} · seq ${r.seq} · ${r.count} readings`)),
        ),
    ),
  )
}

async function showRecord(id) {
  const p = await api(`/v1/records/${encodeURIComponent(id)}/proof`)
  const r = p.record
  const verdict = await verifyInclusion(r.commitment, p.leafIndex, p.treeSize, p.proof, p.block.header.recordsRoot)
  fill(
    $('record-detail'),
    kv([
      ['Record', `${r.id} (stream ${String(r.stream).slice(0, 12)}…, seq ${r.seq})`],
      ['Gateway / device', `${r.gateway} / ${r.device}`],
      ['Patient', h('code', null, r.patient)],
      ['Readings', `${r.count} · ${(r.types ?? []).join(', ')}`],
      ['Measured', h('span', null, new Date(r.from).toISOString(), ' – ', new Date(r.to).toISOString())],
      ['Policy', h('code', null, r.policy)],
      ['Envelope CID', h('code', null, r.cid)],
      ['Commitment (leaf)', short(r.commitment, 64)],
      ['Block', `#${p.block.header.height} · leaf ${p.leafIndex} of ${p.treeSize}`],
      ['Records root', short(p.block.header.recordsRoot, 64)],
      ['Proof', p.proof.length ? h('ol', { class: 'proof' }, p.proof.map((x) => h('li', null, h('code', null, x)))) : h('span', { class: 'none' }, 'empty (the block holds one record)')],
      ['Check', h('span', { class: `badge ${verdict === true ? 'ok' : verdict === false ? 'bad' : 'muted'}`, id: 'proof-verdict' }, verdict === true ? 'inclusion proof verified in this browser (RFC 9162 §2.1.3.2)' : verdict === false ? 'inclusion proof does NOT verify' : 'not checked here (Web Crypto needs HTTPS)')],
    ]),
  )
}

// RFC 9162 §2.1.3.2: verify an inclusion proof; the leaf's data is the 32-byte chameleon hash.
const fromHex = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)))
const toHex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
async function sha256(...parts) {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) all.set(p, (o += p.length) - p.length)
  return new Uint8Array(await crypto.subtle.digest('SHA-256', all))
}
async function verifyInclusion(leafHex, index, size, proofHex, rootHex) {
  if (!globalThis.crypto?.subtle) return null
  if (index >= size) return false
  let fn = index
  let sn = size - 1
  let r = await sha256(Uint8Array.of(0), fromHex(leafHex))
  for (const p of proofHex.map(fromHex)) {
    if (sn === 0) return false
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2)
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 && toHex(r) === rootHex
}

// ── session and polling ───────────────────────────────────────────────────────────────────────
const timers = []
// Sections in modules of their own (anchors.js) register here and are polled with the tables.
const panels = []
let started = false
export function registerPanel(what, load) {
  panels.push({ what, load })
  if (started) every(TABLES_EVERY_MS, load, what)
}

function every(ms, f, what) {
  const run = () => f().catch((e) => failed(e, what))
  run()
  timers.push(setInterval(run, ms))
}

function start() {
  say('')
  $('token-form').hidden = true
  $('session').hidden = false
  $('who').textContent = `token ${token.slice(0, 8)}…`
  $('app').hidden = false
  every(STATS_EVERY_MS, loadStats, 'counters')
  every(TABLES_EVERY_MS, async () => {
    await Promise.all([loadGateways(), loadStreams(), loadVerification(), loadEnvelopes()])
  }, 'gateways, streams, verification and envelopes')
  started = true
  for (const p of panels) every(TABLES_EVERY_MS, p.load, p.what)
}

function signOut(reason) {
  started = false
  for (const t of timers.splice(0)) clearInterval(t)
  sessionStorage.removeItem(TOKEN_KEY)
  token = null
  $('app').hidden = true
  $('session').hidden = true
  $('token-form').hidden = false
  say(reason ?? '')
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const value = $('token').value.trim()
  if (!/^clt_[A-Za-z0-9_-]{43}$/.test(value)) return say('An API token looks like clt_ followed by 43 characters (careledger cloud token create --role admin --name …).')
  token = value
  sessionStorage.setItem(TOKEN_KEY, token)
  $('token').value = ''
  start()
})
$('sign-out').addEventListener('click', () => signOut('Token forgotten.'))

if (token) start()
