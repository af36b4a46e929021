// CareLedger cloud console: the anchors section (GET /v1/anchors). The chain's head is published
// to an EVM chain; this shows the anchoring state, the newest anchor that counts, the one in
// flight, the last RPC error, and each anchor with a link to its transaction in the block
// explorer configured for the network (CARELEDGER_ANCHOR_EXPLORER_TX_URL).
//
// Escaping as in console.js: values become text nodes; a link's href is set only to an http(s)
// URL the API built from the operator's template.

import { api, fill, h, kv, registerPanel, short, when } from './console.js'

const STATE_TEXT = {
  ok: 'anchoring works',
  starting: 'starting',
  retrying: 'RPC failing: retrying with backoff',
  misconfigured: 'misconfigured: anchoring cannot work',
  behind: 'CHAIN BEHIND ITS LATEST ANCHOR',
  'waiting-fee': 'waiting: network fee above the configured cap',
  off: 'off',
}
const STATE_CLASS = { ok: 'ok', behind: 'bad', misconfigured: 'bad', retrying: 'warn', 'waiting-fee': 'warn' }

function txLink(a) {
  if (!a?.tx) return h('span', { class: 'none' }, '–')
  const code = short(a.tx, 18)
  if (!a.txUrl || !/^https?:\/\//.test(a.txUrl)) return code
  const link = document.createElement('a')
  link.href = a.txUrl
  link.rel = 'noopener noreferrer external'
  link.target = '_blank'
  link.append(code)
  return link
}

const confirmations = (a, need) => (a ? `${a.confirmations}${need ? ` of ${need}` : ''}` : '–')

async function loadAnchors() {
  const box = document.getElementById('anchors-body')
  const list = document.getElementById('anchors-list')
  const { status: s, anchors } = await api('/v1/anchors?limit=20')
  box.className = `panel ${STATE_CLASS[s.state] ?? ''}`
  if (!s.enabled) {
    fill(box, h('span', { class: 'none' }, 'Anchoring is off: set CARELEDGER_ANCHOR_RPC_URL, _CHAIN_ID, _CONTRACT and _KEYSTORE (docs/operations.md §Anchoring).'))
  } else {
    const need = s.confirmationsRequired
    fill(
      box,
      kv([
        ['State', h('span', { class: `badge ${STATE_CLASS[s.state] ?? 'muted'}`, id: 'anchor-state' }, STATE_TEXT[s.state] ?? s.state)],
        ['Network', h('span', null, `chain id ${s.chainId} · contract `, short(s.contract, 42))],
        ['Anchoring account', short(s.account, 42)],
        ['Latest anchored', s.latest ? h('span', { id: 'anchor-latest' }, `block ${s.latest.height} · `, txLink(s.latest), ` · ${confirmations(s.latest)} confirmations · `, when(s.latest.confirmedAt)) : h('span', { class: 'none' }, 'none yet')],
        ['In flight', s.pending ? h('span', null, `block ${s.pending.height} · `, txLink(s.pending), ` · ${confirmations(s.pending, need)} confirmations`) : h('span', { class: 'none' }, 'none')],
        ['Blocks since', s.lagBlocks === null ? '–' : String(s.lagBlocks)],
        ['Schedule', h('span', null, `${s.schedule} · next at `, s.nextScheduledAt ? new Date(s.nextScheduledAt).toISOString() : '–')],
        ['Last error', s.lastError ? h('span', null, `${s.lastError} (${s.consecutiveFailures} in a row) · `, when(s.lastErrorAt)) : h('span', { class: 'none' }, 'none')],
      ]),
    )
  }
  if (anchors.length === 0) return fill(list, h('tr', null, h('td', { colspan: 7, class: 'none' }, 'no anchors yet')))
  fill(
    list,
    anchors.map((a) =>
      h(
        'tr',
        { class: a.status === 'failed' ? 'revoked' : null, title: a.error ?? null },
        h('td', { class: 'num' }, String(a.height)),
        h('td', null, h('span', { class: `badge ${a.status === 'confirmed' ? 'ok' : a.status === 'failed' ? 'bad' : 'muted'}` }, a.status)),
        h('td', null, txLink(a)),
        h('td', { class: 'num' }, a.evmBlock === null ? '–' : String(a.evmBlock)),
        h('td', { class: 'num' }, String(a.confirmations)),
        h('td', null, when(a.createdAt)),
        h('td', null, when(a.confirmedAt)),
      ),
    ),
  )
}

registerPanel('anchors', loadAnchors)
