import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { recoverAddress, Signature, SigningKey, Wallet } from 'ethers'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ethSigner, forgetKnownSigners } from '../../shared/crypto/eth-signer.ts'

/** What ethers' recovery says, or 'throws'. */
const recovered = (digest: Uint8Array, signature: string): string => {
  try {
    return recoverAddress(digest, signature)
  } catch {
    return 'throws'
  }
}
const fast = (digest: Uint8Array, signature: string, expected: string): string => {
  try {
    return ethSigner(digest, signature, expected)
  } catch {
    return 'throws'
  }
}

const key = (seed: number): SigningKey => new SigningKey('0x' + bytesToHex(secp256k1.utils.randomSecretKey(new Uint8Array(48).fill(seed))))

describe('ethSigner: the signer of an Ethereum signature, by verification once the key is known', () => {
  it('answers exactly what recovery answers, before and after the key is learnt and its table built', () => {
    forgetKnownSigners()
    const alice = key(1)
    const bob = key(2)
    const aliceAddress = new Wallet(alice).address
    const bobAddress = new Wallet(bob).address
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(5), (digest, other, tamper) => {
        const sig = alice.sign(digest)
        let signature = sig.serialized
        let message = digest
        // 0 honest, 1 flipped v, 2 other digest, 3 Bob's signature claimed as Alice's, 4 r changed, 5 s changed
        if (tamper === 1) signature = Signature.from({ r: sig.r, s: sig.s, v: sig.v === 27 ? 28 : 27 }).serialized
        if (tamper === 2) message = other
        if (tamper === 3) signature = bob.sign(digest).serialized
        if (tamper === 4) signature = Signature.from({ r: '0x' + bytesToHex(other), s: sig.s, v: sig.v }).serialized
        if (tamper === 5) signature = sig.serialized.slice(0, 66) + bytesToHex(other.map((b, i) => (i === 0 ? b & 0x7f : b))) + sig.serialized.slice(130)
        const want = recovered(message, signature)
        expect(fast(message, signature, aliceAddress)).toBe(want)
        expect(fast(message, signature, bobAddress)).toBe(want)
        if (tamper === 0) expect(want).toBe(aliceAddress)
        if (tamper === 1 || tamper === 2) expect(want).not.toBe(aliceAddress)
      }),
      { numRuns: 120 },
    )
  })

  it('a high-s twin of a good signature is refused as ethers refuses it', () => {
    const alice = key(3)
    const address = new Wallet(alice).address
    const digest = new Uint8Array(32).fill(9)
    for (let i = 0; i < 6; i++) expect(ethSigner(digest, alice.sign(digest).serialized, address)).toBe(address) // learnt, table built
    const sig = alice.sign(digest)
    const highS = '0x' + (secp256k1.Point.Fn.ORDER - BigInt(sig.s)).toString(16).padStart(64, '0')
    expect(() => ethSigner(digest, sig.r + highS.slice(2) + (sig.v === 27 ? '1c' : '1b'), address)).toThrow(/non-canonical s/)
  })
})
