import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { sha256 } from '@noble/hashes/sha2.js'
import { MerkleTree, emptyRoot, leafHash, merkleRoot, nodeHash, verifyConsistency, verifyInclusion } from '../../shared/crypto/merkle.ts'
import { isCareLedgerError } from '../../shared/errors.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

function errorOf(f: () => unknown): { code: string; reason: unknown } | null {
  try {
    f()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { code: e.code, reason: e.info.reason }
  }
}

// Certificate Transparency reference vectors, from transparency-dev/merkle (the successor of
// google/certificate-transparency's C++ tests): testonly/constants.go (LeafInputs, RootHashes)
// and proof/verify_test.go (inclusionProofs, consistencyProofs; leaf numbers there are 1-based).
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex)
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', // size 0: SHA-256("")
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]
/** [0-based leaf index, tree size, audit path] */
const CT_INCLUSION: [number, number, string[]][] = [
  [0, 1, []],
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
]
/** [old size, new size, consistency path] */
const CT_CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
]

// ---- RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 written out literally, as a reference -----------

const largestBelow = (n: number): number => {
  let p = 1
  while (p * 2 < n) p *= 2
  return p
}
function refMTH(d: readonly Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256(new Uint8Array(0))
  if (d.length === 1) return leafHash(d[0]!)
  const split = largestBelow(d.length)
  return nodeHash(refMTH(d.slice(0, split)), refMTH(d.slice(split)))
}
function refPATH(m: number, d: readonly Uint8Array[]): Uint8Array[] {
  if (d.length === 1) return []
  const split = largestBelow(d.length)
  return m < split ? [...refPATH(m, d.slice(0, split)), refMTH(d.slice(split))] : [...refPATH(m - split, d.slice(split)), refMTH(d.slice(0, split))]
}
function refSUBPROOF(m: number, d: readonly Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [refMTH(d)]
  const split = largestBelow(d.length)
  return m <= split
    ? [...refSUBPROOF(m, d.slice(0, split), b), refMTH(d.slice(split))]
    : [...refSUBPROOF(m - split, d.slice(split), false), refMTH(d.slice(0, split))]
}

/** n distinct leaves (a wrong index can only verify if two leaves are equal). */
const leavesOf = (n: number, salt = ''): Uint8Array[] => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`${salt}leaf ${i}`))
const flipBit = (h: Uint8Array, bit: number): Uint8Array => {
  const c = h.slice()
  c[bit >> 3]! ^= 1 << (bit & 7)
  return c
}

describe('Merkle trees (RFC 9162 §2.1, SHA-256)', () => {
  it('hashes leaves and nodes with the 0x00 / 0x01 prefixes; the empty tree is SHA-256("")', () => {
    expect(hex(leafHash(new Uint8Array(0)))).toBe(hex(sha256(Uint8Array.of(0))))
    const a = leafHash(Uint8Array.of(1))
    const b = leafHash(Uint8Array.of(2))
    expect(hex(nodeHash(a, b))).toBe(hex(sha256(Uint8Array.from([1, ...a, ...b]))))
    expect(hex(emptyRoot())).toBe(CT_ROOTS[0])
    expect(hex(merkleRoot([]))).toBe(CT_ROOTS[0])
    expect(MerkleTree.fromLeaves([]).size).toBe(0)
  })

  it.each(CT_ROOTS.map((root, size) => [size, root] as const))('reproduces the CT reference root for %i leaves', (size, root) => {
    const tree = MerkleTree.fromLeaves(CT_LEAVES.slice(0, size))
    expect(hex(tree.root)).toBe(root)
    expect(hex(merkleRoot(CT_LEAVES.slice(0, size)))).toBe(root)
    expect(hex(MerkleTree.fromLeafHashes(CT_LEAVES.slice(0, size).map(leafHash)).root)).toBe(root)
  })

  it.each(CT_INCLUSION)('reproduces and verifies the CT inclusion proof for leaf %i of %i', (index, size, path) => {
    const tree = MerkleTree.fromLeaves(CT_LEAVES.slice(0, size))
    expect(tree.inclusionProof(index).map(hex)).toEqual(path)
    expect(verifyInclusion(leafHash(CT_LEAVES[index]!), index, size, path.map(unhex), unhex(CT_ROOTS[size]!))).toBe(true)
  })

  it.each(CT_CONSISTENCY)('reproduces and verifies the CT consistency proof %i → %i', (m, n, path) => {
    const tree = MerkleTree.fromLeaves(CT_LEAVES.slice(0, n))
    expect(tree.consistencyProof(m).map(hex)).toEqual(path)
    expect(verifyConsistency(m, n, unhex(CT_ROOTS[m]!), unhex(CT_ROOTS[n]!), path.map(unhex))).toBe(true)
  })

  it('agrees with the recursive definitions of §2.1.1, §2.1.3.1 and §2.1.4.1 for every size up to 70', () => {
    for (let n = 0; n <= 70; n++) {
      const d = leavesOf(n)
      const tree = MerkleTree.fromLeaves(d)
      expect(hex(tree.root)).toBe(hex(refMTH(d)))
      for (let i = 0; i < n; i++) expect(tree.inclusionProof(i).map(hex)).toEqual(refPATH(i, d).map(hex))
      for (let m = 1; m < n; m++) expect(tree.consistencyProof(m).map(hex)).toEqual(refSUBPROOF(m, d, true).map(hex))
    }
  })

  describe('inclusion proofs', () => {
    it('every proof verifies, and any flipped bit, wrong index or wrong size fails (sizes 1..64)', () => {
      for (let n = 1; n <= 64; n++) {
        const tree = MerkleTree.fromLeaves(leavesOf(n))
        const root = tree.root
        for (let i = 0; i < n; i++) {
          const leaf = tree.leafHash(i)
          const proof = tree.inclusionProof(i)
          expect(verifyInclusion(leaf, i, n, proof, root)).toBe(true)
          for (let j = 0; j < n; j++) if (j !== i) expect(verifyInclusion(leaf, j, n, proof, root)).toBe(false)
          expect(verifyInclusion(leaf, n, n, proof, root)).toBe(false)
          expect(verifyInclusion(leaf, i, n * 2, proof, root)).toBe(false)
          if (Math.floor(n / 2) !== n && n > 1) expect(verifyInclusion(leaf, i, Math.floor(n / 2), proof, root)).toBe(false)
          expect(verifyInclusion(flipBit(leaf, 5), i, n, proof, root)).toBe(false)
          expect(verifyInclusion(leaf, i, n, proof, flipBit(root, 200))).toBe(false)
          expect(verifyInclusion(leaf, i, n, [...proof, root], root)).toBe(false)
          expect(verifyInclusion(leaf, i, n, [root, ...proof], root)).toBe(false)
          if (proof.length > 0) expect(verifyInclusion(leaf, i, n, proof.slice(0, -1), root)).toBe(false)
        }
      }
    })

    it('a flipped bit anywhere in any proof element fails (property)', () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.nat(255), fc.string())), ([n, i, bit, salt]) => {
          const tree = MerkleTree.fromLeaves(leavesOf(n, salt))
          const proof = tree.inclusionProof(i)
          const at = bit % proof.length
          const bad = proof.map((p, j) => (j === at ? flipBit(p, bit) : p))
          expect(verifyInclusion(tree.leafHash(i), i, n, proof, tree.root)).toBe(true)
          expect(verifyInclusion(tree.leafHash(i), i, n, bad, tree.root)).toBe(false)
        }),
        { numRuns: 200 },
      )
    })

    it('handles tree sizes beyond 2^32, where bit operators would wrap', () => {
      // All leaves equal: the hash of a subtree then depends only on its size, so huge trees are cheap.
      const leaf = leafHash(new TextEncoder().encode('same'))
      const memo = new Map<number, Uint8Array>([[1, leaf]])
      const mth = (n: number): Uint8Array => {
        let h = memo.get(n)
        if (!h) {
          const split = largestBelow(n)
          h = nodeHash(mth(split), mth(n - split))
          memo.set(n, h)
        }
        return h
      }
      const path = (m: number, n: number): Uint8Array[] => {
        if (n === 1) return []
        const split = largestBelow(n)
        return m < split ? [...path(m, split), mth(n - split)] : [...path(m - split, n - split), mth(split)]
      }
      const subproof = (m: number, n: number, b: boolean): Uint8Array[] => {
        if (m === n) return b ? [] : [mth(n)]
        const split = largestBelow(n)
        return m <= split ? [...subproof(m, split, b), mth(n - split)] : [...subproof(m - split, n - split, false), mth(split)]
      }
      const n = 2 ** 40 + 2 ** 33 + 12345
      for (const i of [0, 2 ** 31 + 7, 2 ** 32 + 1, 2 ** 40 + 3, n - 1]) {
        expect(verifyInclusion(leaf, i, n, path(i, n), mth(n))).toBe(true)
        expect(verifyInclusion(leaf, i, n, path(i, n), flipBit(mth(n), 3))).toBe(false)
      }
      for (const m of [3, 2 ** 31 + 1, 2 ** 32, 2 ** 33 + 5, n - 1]) {
        expect(verifyConsistency(m, n, mth(m), mth(n), subproof(m, n, true))).toBe(true)
        expect(verifyConsistency(m, n, mth(m), flipBit(mth(n), 1), subproof(m, n, true))).toBe(false)
      }
    })
  })

  describe('consistency proofs', () => {
    it('verify for all 0 ≤ m ≤ n ≤ 64, and corrupted ones fail', () => {
      const d = leavesOf(64)
      const roots = Array.from({ length: 65 }, (_, n) => MerkleTree.fromLeaves(d.slice(0, n)).root)
      for (let n = 0; n <= 64; n++) {
        const tree = MerkleTree.fromLeaves(d.slice(0, n))
        for (let m = 0; m <= n; m++) {
          const proof = tree.consistencyProof(m)
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof)).toBe(true)
          if (m === 0 || m === n) {
            expect(proof).toEqual([])
            continue
          }
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [])).toBe(false)
          expect(verifyConsistency(n, m, roots[n]!, roots[m]!, proof)).toBe(false)
          expect(verifyConsistency(m, n, roots[n]!, roots[m]!, proof)).toBe(false)
          expect(verifyConsistency(m, n, flipBit(roots[m]!, 9), roots[n]!, proof)).toBe(false)
          expect(verifyConsistency(m, n, roots[m]!, flipBit(roots[n]!, 9), proof)).toBe(false)
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(0, -1))).toBe(false)
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, roots[n]!])).toBe(false)
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [roots[m]!, ...proof])).toBe(false)
          for (let j = 0; j < proof.length; j++) {
            expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.map((p, x) => (x === j ? flipBit(p, 4) : p)))).toBe(false)
          }
          if (m + 1 < n) expect(verifyConsistency(m + 1, n, roots[m]!, roots[n]!, proof)).toBe(false)
          if (m > 1) expect(verifyConsistency(m - 1, n, roots[m]!, roots[n]!, proof)).toBe(false)
          // a log that rewrote leaf 0 after publishing the old head cannot prove consistency
          const forged = MerkleTree.fromLeaves([new TextEncoder().encode('rewritten'), ...d.slice(1, n)])
          expect(verifyConsistency(m, n, roots[m]!, forged.root, forged.consistencyProof(m))).toBe(false)
        }
      }
    })

    it('the edge cases outside the RFC: m = 0 needs the empty-tree root, m = n equal roots, both an empty proof', () => {
      const tree = MerkleTree.fromLeaves(leavesOf(5))
      expect(verifyConsistency(0, 5, emptyRoot(), tree.root, [])).toBe(true)
      expect(verifyConsistency(0, 5, tree.root, tree.root, [])).toBe(false)
      expect(verifyConsistency(0, 0, emptyRoot(), emptyRoot(), [])).toBe(true)
      expect(verifyConsistency(0, 0, emptyRoot(), tree.root, [])).toBe(false)
      expect(verifyConsistency(5, 5, tree.root, tree.root, [])).toBe(true)
      expect(verifyConsistency(5, 5, tree.root, emptyRoot(), [])).toBe(false)
      expect(verifyConsistency(5, 5, tree.root, tree.root, [tree.root])).toBe(false)
      expect(verifyConsistency(6, 5, tree.root, tree.root, [])).toBe(false)
    })
  })

  describe('input checking', () => {
    const tree = MerkleTree.fromLeaves(leavesOf(9))
    const proof = tree.inclusionProof(3)

    it('throws INVALID_ENCODING for hashes that are not 32 bytes and INVALID_ARGUMENT for bad sizes or indices', () => {
      expect(errorOf(() => verifyInclusion(new Uint8Array(31), 3, 9, proof, tree.root))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), 3, 9, [...proof, new Uint8Array(33)], tree.root))).toEqual({ code: 'INVALID_ENCODING', reason: 'BAD_LENGTH' })
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), 3, 9, proof, 'root' as never))).toEqual({ code: 'INVALID_ENCODING', reason: 'NOT_BYTES' })
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), -1, 9, proof, tree.root))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), 3, 9.5, proof, tree.root))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), 3, 2 ** 60, proof, tree.root))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => verifyInclusion(tree.leafHash(3), 3, 9, 'proof' as never, tree.root))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => verifyConsistency(1, 9, new Uint8Array(0), tree.root, []))?.code).toBe('INVALID_ENCODING')
      expect(errorOf(() => verifyConsistency(Number.NaN, 9, tree.root, tree.root, []))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => tree.inclusionProof(9))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => tree.inclusionProof(-1))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => tree.leafHash(1.5))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => tree.consistencyProof(10))?.code).toBe('INVALID_ARGUMENT')
      expect(errorOf(() => MerkleTree.fromLeafHashes([new Uint8Array(32), new Uint8Array(16)]))?.code).toBe('INVALID_ENCODING')
      expect(errorOf(() => MerkleTree.fromLeaves(['text' as never]))?.code).toBe('INVALID_ARGUMENT')
    })

    it('garbage gives a boolean or a CareLedgerError, never anything else (property)', () => {
      const junk = { withBigInt: true, withNullPrototype: true, withBoxedValues: true, withMap: true, withTypedArray: true }
      const hashy = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 }), fc.anything(junk))
      const size = fc.oneof(fc.nat(100), fc.integer(), fc.double(), fc.anything(junk))
      fc.assert(
        fc.property(hashy, size, size, fc.oneof(fc.array(hashy, { maxLength: 8 }), fc.anything(junk)), hashy, (leaf, i, n, p, root) => {
          errorOf(() => verifyInclusion(leaf as never, i as never, n as never, p as never, root as never))
          errorOf(() => verifyConsistency(i as never, n as never, leaf as never, root as never, p as never))
        }),
        { numRuns: 500 },
      )
    })

    it('hands out copies, so callers cannot corrupt the tree', () => {
      const before = hex(tree.root)
      tree.root.fill(0)
      tree.inclusionProof(3)[0]!.fill(0)
      tree.leafHash(3).fill(0)
      expect(hex(tree.root)).toBe(before)
      expect(verifyInclusion(tree.leafHash(3), 3, 9, tree.inclusionProof(3), tree.root)).toBe(true)
    })
  })
})
