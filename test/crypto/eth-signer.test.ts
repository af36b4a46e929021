import { describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import { recoverAddress, Signature, SigningKey, Wallet } from 'ethers'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ethSigner, ethSignerEngine, forgetKnownSigners } from '../../shared/crypto/eth-signer.ts'

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

describe('ethSigner: the signer of an Ethereum signature, through libsecp256k1 when it names the expected signer', () => {
  it('uses libsecp256k1 (tiny-secp256k1) in Node', () => {
    expect(ethSignerEngine()).toBe('libsecp256k1')
  })

  it('answers exactly what ethers recovery answers: valid, forged, wrong key claimed, tampered r/s/v, high s', () => {
    forgetKnownSigners()
    const alice = key(1)
    const bob = key(2)
    const aliceAddress = new Wallet(alice).address
    const bobAddress = new Wallet(bob).address
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(6), (digest, other, tamper) => {
        const sig = alice.sign(digest)
        let signature = sig.serialized
        let message = digest
        // 0 honest, 1 flipped v, 2 other digest, 3 Bob's signature claimed as Alice's, 4 r changed, 5 s changed, 6 the high-s twin
        if (tamper === 1) signature = Signature.from({ r: sig.r, s: sig.s, v: sig.v === 27 ? 28 : 27 }).serialized
        if (tamper === 2) message = other
        if (tamper === 3) signature = bob.sign(digest).serialized
        if (tamper === 4) signature = Signature.from({ r: '0x' + bytesToHex(other), s: sig.s, v: sig.v }).serialized
        if (tamper === 5) signature = sig.serialized.slice(0, 66) + bytesToHex(other.map((b, i) => (i === 0 ? b & 0x7f : b))) + sig.serialized.slice(130)
        if (tamper === 6) signature = sig.r + (secp256k1.Point.Fn.ORDER - BigInt(sig.s)).toString(16).padStart(64, '0') + (sig.v === 27 ? '1c' : '1b')
        const want = recovered(message, signature)
        expect(fast(message, signature, aliceAddress)).toBe(want)
        expect(fast(message, signature, bobAddress)).toBe(want)
        if (tamper === 0) expect(want).toBe(aliceAddress)
        if (tamper === 1 || tamper === 2 || tamper === 3) expect(want).not.toBe(aliceAddress)
        if (tamper === 6) expect(want).toBe('throws') // EIP-2: a high s is refused before any recovery
      }),
      { numRuns: 120 },
    )
  })

  it('for any key, an honest signature is attributed to its signer and a claim by another key is answered with the real signer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 48, maxLength: 48 }), fc.uint8Array({ minLength: 48, maxLength: 48 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (seedA, seedB, digest) => {
        const a = new SigningKey('0x' + bytesToHex(secp256k1.utils.randomSecretKey(seedA)))
        const b = new Wallet(new SigningKey('0x' + bytesToHex(secp256k1.utils.randomSecretKey(seedB)))).address
        const signature = a.sign(digest).serialized
        const signer = new Wallet(a).address
        expect(fast(digest, signature, signer)).toBe(signer)
        expect(fast(digest, signature, b)).toBe(signer)
        expect(fast(digest, signature, signer.toLowerCase())).toBe(signer)
      }),
      { numRuns: 60 },
    )
  })

  it('a high-s twin of a good signature is refused as ethers refuses it', () => {
    const alice = key(3)
    const address = new Wallet(alice).address
    const digest = new Uint8Array(32).fill(9)
    for (let i = 0; i < 6; i++) expect(ethSigner(digest, alice.sign(digest).serialized, address)).toBe(address) // the good one, answered and remembered
    const sig = alice.sign(digest)
    const highS = '0x' + (secp256k1.Point.Fn.ORDER - BigInt(sig.s)).toString(16).padStart(64, '0')
    expect(() => ethSigner(digest, sig.r + highS.slice(2) + (sig.v === 27 ? '1c' : '1b'), address)).toThrow(/non-canonical s/)
  })

  it('without libsecp256k1 (CARELEDGER_NO_LIBSECP256K1=1, as in a browser bundle) every signature is recovered by ethers, with the same answers', async () => {
    vi.stubEnv('CARELEDGER_NO_LIBSECP256K1', '1')
    vi.resetModules()
    try {
      const slow = (await import('../../shared/crypto/eth-signer.ts')) as typeof import('../../shared/crypto/eth-signer.ts')
      expect(slow.ethSignerEngine()).toBe('ethers')
      const alice = key(4)
      const address = new Wallet(alice).address
      const digest = new Uint8Array(32).fill(5)
      expect(slow.ethSigner(digest, alice.sign(digest).serialized, address)).toBe(address)
      const bob = key(5)
      expect(slow.ethSigner(digest, bob.sign(digest).serialized, address)).toBe(new Wallet(bob).address)
    } finally {
      vi.unstubAllEnvs()
      vi.resetModules()
    }
  })
})
