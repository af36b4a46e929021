/**
 * shared/protocol/instructions.ts: what a gateway does with an instruction as received — the
 * cloud's signature over the canonical CBOR of the instruction, the addressee, the version, the
 * kind and its arguments (docs/api.md §Instructions to gateways).
 */
import { describe, expect, it } from 'vitest'
import { generateSigningKey, sign } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { checkInstruction, signInstruction, type Instruction } from '../../shared/protocol/instructions.ts'

const cloud = generateSigningKey(deterministicRng('instructions test cloud'))
const gateway = '0123456789abcdef'
const resend: Instruction = { v: 1, id: 7, gateway, kind: 'resend-block', issuedAt: 1795600800000, args: { cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', record: 42 } }

describe('cloud → gateway instructions', () => {
  it('signs canonical CBOR of the instruction under "gateway-instruction" with the cloud key; the gateway accepts it', () => {
    const s = signInstruction(cloud.secretKey, resend)
    expect(Buffer.from(s.signature, 'base64')).toEqual(Buffer.from(sign(cloud.secretKey, 'gateway-instruction', encodeCanonical({ ...resend }))))
    const c = checkInstruction(JSON.parse(JSON.stringify(s)), gateway, cloud.publicKey)
    expect(c).toEqual({ ok: true, instruction: { ...resend, signature: s.signature }, kind: 'resend-block', args: resend.args })
  })

  it('refuses (failed) a changed instruction, another key, another addressee, bad arguments, a malformed one', () => {
    const s = signInstruction(cloud.secretKey, resend)
    expect(checkInstruction({ ...s, args: { ...s.args, record: 43 } }, gateway, cloud.publicKey)).toMatchObject({ ok: false, id: 7, status: 'failed', detail: expect.stringMatching(/signature/) })
    expect(checkInstruction(s, gateway, generateSigningKey().publicKey)).toMatchObject({ ok: false, status: 'failed' })
    expect(checkInstruction(s, 'fedcba9876543210', cloud.publicKey)).toMatchObject({ ok: false, status: 'failed', detail: expect.stringMatching(/addressed to gateway/) })
    const badArgs = signInstruction(cloud.secretKey, { ...resend, args: { cid: 'not a cid', record: 1 } })
    expect(checkInstruction(badArgs, gateway, cloud.publicKey)).toMatchObject({ ok: false, status: 'failed', detail: expect.stringMatching(/resend-block: bad arguments/) })
    expect(checkInstruction({ id: 5, kind: 'resend-block' }, gateway, cloud.publicKey)).toMatchObject({ ok: false, id: 5, status: 'failed' })
    expect(checkInstruction('nonsense', gateway, cloud.publicKey)).toMatchObject({ ok: false, id: null, status: 'failed' })
  })

  it('an unknown kind or version, correctly signed, is acknowledged unsupported (what an older gateway answers a newer cloud)', () => {
    const future = signInstruction(cloud.secretKey, { ...resend, kind: 'shred-everything', args: { batch: 7 } })
    expect(checkInstruction(future, gateway, cloud.publicKey)).toMatchObject({ ok: false, id: 7, status: 'unsupported', detail: expect.stringMatching(/kind shred-everything is unknown/) })
    const v2 = signInstruction(cloud.secretKey, { ...resend, v: 2 })
    expect(checkInstruction(v2, gateway, cloud.publicKey)).toMatchObject({ ok: false, status: 'unsupported', detail: expect.stringMatching(/v2/) })
  })
})
