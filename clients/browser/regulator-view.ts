/**
 * The console's regulator view (GET /regulator): the pending supervision requests with their
 * reason, requester and record; the evidence opened IN THE PAGE with the regulator's
 * `role:regulator` attribute key (clients/supervision.ts openEvidence, as `careledger regulator
 * review`), old and new readings side by side, and the requester's signature checked here
 * (clients/supervision-view.ts); approve or reject.
 *
 *   approve = EIP-712 signature by the wallet key file (ethers, shared/protocol/approval.ts, as
 *             `regulator approve`) → POST …/decisions; then
 *             k of n: FROST round one in the page (fresh nonces, kept in this page's memory only
 *             and used once) → POST …/commitments; once the cloud fixed the signers, round two →
 *             POST …/shares (the k-th share applies the redaction)
 *             1 of 1: the adapted opening made with the trapdoor file → POST …/opening
 *   reject  = EIP-712 signature with the reason as comment → POST …/decisions
 *
 * Key, wallet, share and trapdoor files are read with the File API into this page's memory (sealed
 * ones opened with the passphrase typed here, shared/crypto/sealed-secret.ts): they are never
 * stored and never sent — the only bodies the page sends are signatures, commitments and
 * signature shares. Values reach the page as text nodes only (no innerHTML); the CSP forbids inline
 * script. Bundled by cloud/console/bundle.ts with the same code the CLI runs.
 */
import { Wallet } from 'ethers'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { decodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { decodeChameleonSecretKey } from '../../shared/crypto/chameleon.ts'
import { adaptAlone, thresholdAdaptCommit, thresholdAdaptSign } from '../../shared/crypto/chameleon-threshold.ts'
import { decodeFrostShareFile } from '../../shared/crypto/frost-codec.ts'
import type { FrostGroup, FrostNonces, FrostShare } from '../../shared/crypto/frost.ts'
import { systemRng } from '../../shared/crypto/random.ts'
import { isSealedSecret, openWithPassphrase, readSealedHeader } from '../../shared/crypto/sealed-secret.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { approvalTypedData, type Decision } from '../../shared/protocol/approval.ts'
import { parseSupervisoryPolicy, policyGroup, supervisoryPolicyId, type SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { openEvidence, type Evidence } from '../supervision.ts'
import { checkRequester, type RequestView } from '../supervision-view.ts'
import { $, h, say, tokenForm } from './dom.ts'

const TOKEN_KEY = 'careledger.regulator.token'

const failure = (e: unknown): string => (isCareLedgerError(e) ? e.message : (e as Error).message)

// ---- the files, in this page's memory only ---------------------------------------------------------

interface Files {
  key: UserKey | null
  wallet: Wallet | null
  share: { group: FrostGroup; share: FrostShare } | null
  trapdoor: Uint8Array | null
}
const files: Files = { key: null, wallet: null, share: null, trapdoor: null }
const fileNotes = new Map<string, { text: string; bad: boolean }>()

function note(which: string, text: string, bad = false): void {
  fileNotes.set(which, { text, bad })
  $('file-status').replaceChildren(...[...fileNotes.entries()].map(([k, v]) => h('li', v.bad ? 'bad' : null, `${k}: ${v.text}`)))
}

/** A key file's bytes: a sealed one opened with the passphrase typed in this page, a raw one as it is. */
function unseal(bytes: Uint8Array): Uint8Array {
  if (!isSealedSecret(bytes)) return bytes
  const pass = ($('passphrase') as HTMLInputElement).value
  if (!pass) throw new Error(`sealed ("${readSealedHeader(bytes).label}"): type its passphrase first, then choose the file again`)
  return openWithPassphrase(bytes, pass)
}

const LOADERS: Record<string, (bytes: Uint8Array) => string> = {
  key(bytes) {
    const k = decodeUserKey(unseal(bytes))
    if (!k.attributes.includes('role:regulator')) throw new Error(`this key has ${k.attributes.join(', ')}, not role:regulator: it cannot open the evidence`)
    files.key = k
    return `attribute key with ${k.attributes.filter((a) => !a.startsWith('epoch:')).join(', ')} — kept in this page only`
  },
  wallet(bytes) {
    const text = new TextDecoder().decode(unseal(bytes)).trim()
    if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) throw new Error('not a wallet key file (0x + 64 hex digits)')
    files.wallet = new Wallet(text.startsWith('0x') ? text : `0x${text}`)
    return `wallet ${files.wallet.address}${whoAmI()} — kept in this page only`
  },
  share(bytes) {
    files.share = decodeFrostShareFile(unseal(bytes))
    const s = files.share
    return `FROST share ${s.share.index} of ${s.group.participants} (threshold ${s.group.threshold}), group key ${bytesToHex(s.group.groupKey).slice(0, 16)}… — kept in this page only`
  },
  trapdoor(bytes) {
    files.trapdoor = decodeChameleonSecretKey(unseal(bytes))
    return 'chameleon trapdoor (1 of 1) — kept in this page only'
  },
}

async function loadFile(which: keyof Files, file: File): Promise<void> {
  files[which] = null
  try {
    note(which, LOADERS[which]!(new Uint8Array(await file.arrayBuffer())))
  } catch (e) {
    note(which, failure(e), true)
  }
  void refresh()
}

// ---- the API ---------------------------------------------------------------------------------------

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (!token) throw new Error('enter your regulator token first')
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  })
  const json = (await res.json().catch(() => ({}))) as { error?: { message?: string; details?: { reason?: string } } }
  if (!res.ok) throw new Error(`${res.status} ${json.error?.details?.reason ?? ''} ${json.error?.message ?? res.statusText}`.replace(/\s+/g, ' '))
  return json as T
}

let policy: SupervisoryPolicy | null = null

function whoAmI(): string {
  if (!policy || !files.wallet) return ''
  const me = policy.regulators.find((r) => r.address.toLowerCase() === files.wallet!.address.toLowerCase())
  return me ? ` (${me.name}, regulator ${me.index} of the policy)` : ' — NOT a regulator of the policy in force'
}

// ---- FROST sessions: nonces live in this page's memory and are used once ---------------------------

const sessions = new Map<string, { nonces: FrostNonces; index: number }>()

/** Round two for every request whose signers are fixed and that waits for our share. */
async function advance(): Promise<void> {
  for (const [id, s] of [...sessions]) {
    const { request: r } = await api<{ request: RequestView }>('GET', `/v1/supervision/requests/${id}`)
    if (r.status !== 'pending') {
      sessions.delete(id)
      say(`request ${id.slice(0, 12)}…: ${r.status}`)
      continue
    }
    if (!r.signers || r.shares.includes(s.index)) continue
    if (!r.signers.includes(s.index)) {
      sessions.delete(id)
      say(`request ${id.slice(0, 12)}…: the signers are ${r.signers.join(', ')}; your share is not needed`)
      continue
    }
    sessions.delete(id) // the nonces are single-use: gone before they sign
    const commitments = r.commitments.map((c) => ({ index: c.index, hiding: hexToBytes(c.hiding), binding: hexToBytes(c.binding) }))
    const z = thresholdAdaptSign(files.share!.share, policyGroup(policy!), s.nonces, commitments, { hash: hexToBytes(r.hash), message: hexToBytes(r.newContentBytes) })
    const done = await api<{ request: RequestView }>('POST', `/v1/supervision/requests/${id}/shares`, { index: z.index, share: bytesToHex(z.share) })
    say(`signature share of signer ${z.index} accepted; request ${id.slice(0, 12)}…: ${done.request.status}`)
  }
}

async function decide(r: RequestView, decision: Decision, comment: string): Promise<RequestView> {
  if (!policy) throw new Error('no supervisory policy is set on this cloud')
  if (!files.wallet) throw new Error('choose your wallet key file first (it stays in this page)')
  const t = approvalTypedData(policy, { requestId: r.id, record: r.record, action: r.action, oldContent: r.oldContent, newContent: r.newContent, decision, comment })
  const signature = await files.wallet.signTypedData(t.domain, t.types, t.message)
  const approval = { requestId: r.id, record: r.record, action: r.action, oldContent: r.oldContent, newContent: r.newContent, policy: bytesToHex(supervisoryPolicyId(policy)), regulator: files.wallet.address, decision, comment, signature }
  return (await api<{ request: RequestView }>('POST', `/v1/supervision/requests/${r.id}/decisions`, approval)).request
}

async function approve(r: RequestView, comment: string): Promise<void> {
  const single = policy?.keyGeneration === 'single'
  if (single && !files.trapdoor) throw new Error('a 1-of-1 policy: choose the trapdoor file first (it stays in this page)')
  if (!single && !files.share) throw new Error(`a ${policy?.threshold}-of-${policy?.regulators.length} policy: choose your FROST share file first (it stays in this page)`)
  const decided = await decide(r, 'approve', comment)
  if (single) {
    const opening = adaptAlone(files.trapdoor!, { hash: hexToBytes(decided.hash), message: hexToBytes(decided.newContentBytes) }, systemRng)
    const done = await api<{ request: RequestView }>('POST', `/v1/supervision/requests/${r.id}/opening`, { opening: bytesToHex(opening.R) + bytesToHex(opening.s) })
    say(`approved; request ${r.id.slice(0, 12)}…: ${done.request.status}`)
    return
  }
  const { nonces, commitment } = thresholdAdaptCommit(files.share!.share, systemRng)
  await api('POST', `/v1/supervision/requests/${r.id}/commitments`, { index: commitment.index, hiding: bytesToHex(commitment.hiding), binding: bytesToHex(commitment.binding) })
  sessions.set(r.id, { nonces, index: commitment.index })
  say(`approved request ${r.id.slice(0, 12)}…; your commitment is in — keep this page open: your signature share follows once ${policy!.threshold} regulators approved`)
}

// ---- rendering -------------------------------------------------------------------------------------

const value = (x: SealedReading | undefined): string => (x ? `${x.value ?? (x.samples ? `${x.samples.length} samples` : '')} ${x.unit}` : '')

function readingsTable(ev: Evidence): HTMLElement {
  const fresh = new Map((ev.new ?? []).map((x) => [x.seq, x]))
  const rows = ev.old.map((old) => {
    const now = fresh.get(old.seq)
    fresh.delete(old.seq)
    const after = ev.action === 'delete' ? '(deleted)' : now ? value(now) : '(removed)'
    const cls = ev.action === 'delete' || !now ? 'removed' : JSON.stringify(now) !== JSON.stringify(old) ? 'changed' : null
    return h('tr', cls, h('td', null, String(old.seq)), h('td', null, new Date(old.ts).toISOString()), h('td', null, old.type), h('td', null, value(old)), h('td', null, after))
  })
  for (const now of fresh.values()) rows.push(h('tr', 'changed', h('td', null, String(now.seq)), h('td', null, new Date(now.ts).toISOString()), h('td', null, now.type), h('td', null, '(new)'), h('td', null, value(now))))
  return h('table', 'readings', h('thead', null, h('tr', null, ...['seq', 'time (UTC)', 'type', 'old', 'new'].map((t) => h('th', null, t)))), h('tbody', null, ...rows))
}

function card(r: RequestView): HTMLElement {
  const who = checkRequester(policy!, r)
  const meta: [string, string][] = [
    ['request', r.id],
    ['requester', who.text],
    ['reason', r.reason],
    ['record', `${r.record} (CID ${r.oldCid}${r.newCid ? ` → ${r.newCid}` : ''})`],
    ['filed', new Date(r.createdAt).toISOString()],
    ['decisions', r.decisions.map((d) => `${d.regulator} ${d.decision}${d.comment ? ` ("${d.comment}")` : ''}`).join('; ') || 'none yet'],
  ]
  let evidence: HTMLElement
  if (!r.evidence) evidence = h('p', 'note', 'no evidence attached: the requester did not seal the readings for regulators')
  else if (!files.key) evidence = h('p', 'note', 'choose your role:regulator attribute key to open the evidence (it stays in this page)')
  else {
    try {
      const ev = openEvidence(files.key, hexToBytes(r.evidence), r.record, r.action)
      const m = ev.manifest
      meta.push(['stream', `${m.stream} #${m.seq} — device ${m.device}, patient ${m.patient}`], ['readings span', `${new Date(m.from).toISOString()} … ${new Date(m.to).toISOString()} (${m.count} readings)`], ['policy', m.policy])
      evidence = readingsTable(ev)
    } catch (e) {
      evidence = h('p', 'bad', `evidence: ${failure(e)}`)
    }
  }
  const comment = h('input', 'comment') as HTMLInputElement
  comment.placeholder = 'comment (approve) or reason (reject)'
  const approveBtn = h('button', 'approve', 'Approve')
  const rejectBtn = h('button', 'reject', 'Reject')
  const act = (f: () => Promise<unknown>) => async () => {
    approveBtn.setAttribute('disabled', '')
    rejectBtn.setAttribute('disabled', '')
    try {
      await f()
      await refresh()
    } catch (e) {
      say(failure(e), true)
    } finally {
      approveBtn.removeAttribute('disabled')
      rejectBtn.removeAttribute('disabled')
    }
  }
  approveBtn.addEventListener('click', act(() => approve(r, comment.value.trim())))
  rejectBtn.addEventListener('click', act(async () => {
    if (!comment.value.trim()) throw new Error('a rejection needs a reason')
    const done = await decide(r, 'reject', comment.value.trim())
    say(`rejected request ${r.id.slice(0, 12)}…; it is ${done.status}`)
  }))
  const el = h(
    'article',
    'request',
    h('h3', null, `${r.action === 'delete' ? 'Delete' : 'Correct'} record ${r.record}`),
    h('dl', null, ...meta.flatMap(([k, v]) => [h('dt', null, k), h('dd', k === 'requester' ? (who.verified ? 'verified' : 'unverified') : null, v)])),
    evidence,
    h('div', 'actions', comment, approveBtn, rejectBtn),
  )
  el.dataset.id = r.id
  return el
}

let refreshing: Promise<void> | null = null
async function refresh(): Promise<void> {
  if (!sessionStorage.getItem(TOKEN_KEY)) return
  refreshing ??= (async () => {
    try {
      policy = parseSupervisoryPolicy((await api<{ policy: unknown }>('GET', '/v1/supervision/policy')).policy)
      $('policy').textContent = `${policy.threshold} of ${policy.regulators.length} regulators (key generation ${policy.keyGeneration}): ${policy.regulators.map((x) => `${x.index}. ${x.name} ${x.address}`).join(' · ')}${whoAmI()}`
      if (files.wallet) note('wallet', `wallet ${files.wallet.address}${whoAmI()} — kept in this page only`)
      const { requests } = await api<{ requests: RequestView[] }>('GET', '/v1/supervision/requests?status=pending')
      $('requests').replaceChildren(...(requests.length ? requests.map(card) : [h('p', 'note', 'no pending requests')]))
      await advance()
    } catch (e) {
      say(failure(e), true)
    } finally {
      refreshing = null
    }
  })()
  return refreshing
}

function start(): void {
  for (const which of ['key', 'wallet', 'share', 'trapdoor'] as const) {
    $(which).addEventListener('change', (ev) => {
      const f = (ev.target as HTMLInputElement).files?.[0]
      if (f) void loadFile(which, f)
    })
  }
  $('refresh').addEventListener('click', () => void refresh())
  // Round two waits for the other regulators: look again every few seconds while a session is open.
  setInterval(() => void (sessions.size > 0 && refresh()), 3000)
  tokenForm(TOKEN_KEY, () => void refresh())
}

start()
