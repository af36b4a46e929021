/**
 * Who asked, as a regulator's tools (the CLI's `regulator review`, the console's regulator view)
 * show it: the requester's EVM address when the request carries a requester signature that
 * verifies HERE (shared/protocol/supervision-request.ts: it recovers to the named address, its
 * digest is the request id, and — for a correction — it signed the very manifest the new content
 * holds), else only the token name the cloud vouches for. Pure.
 */
import { hexToBytes } from '@noble/hashes/utils.js'
import type { RequestView } from '../cloud/supervision/store.ts'
import { decodeRecordContent } from '../cloud/chain/record.ts'
import { manifestCommitment } from '../shared/protocol/manifest.ts'
import { NO_MANIFEST, verifyRequesterSignature } from '../shared/protocol/supervision-request.ts'
import type { SupervisoryPolicy } from '../shared/protocol/supervisory-policy.ts'

export type { RequestView }

export interface Requester {
  /** True only when the requester's signature verified here. */
  readonly verified: boolean
  readonly address: string | null
  readonly text: string
}

export function checkRequester(policy: SupervisoryPolicy, r: RequestView): Requester {
  const s = r.requesterSignature
  if (!s) return { verified: false, address: null, text: `${r.requester} — NOT signed (a request from before requester signatures: only the cloud's token vouches for it)` }
  try {
    const newManifest = r.action === 'correct' ? manifestCommitment(decodeRecordContent(hexToBytes(r.newContentBytes)).manifest) : NO_MANIFEST
    const v = verifyRequesterSignature(policy, r, s, { requestId: r.id, newManifest })
    return { verified: true, address: v.requester, text: `${v.requester} — signature verified (filed with the token of ${r.requester})` }
  } catch (e) {
    return { verified: false, address: s.requester, text: `${s.requester} — SIGNATURE DOES NOT VERIFY: ${(e as Error).message}` }
  }
}
