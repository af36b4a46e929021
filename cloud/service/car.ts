/**
 * CAR checks for an uploaded batch (docs/api.md §POST /v1/batches): the CARv1 (IPLD CAR spec,
 * https://ipld.io/specs/transport/car/carv1/) must hold the sealed envelope and nothing else:
 *
 *   1. it parses as a CARv1 (a CARv2 wrapper is refused: the contract is CARv1);
 *   2. its header names exactly one root, and that root is `manifest.cid`;
 *   3. every block's bytes hash to its CID's multihash — @ipld/car's reader does NOT check this,
 *      so we re-hash each block here (sha2-256 only, the hash gateways use);
 *   4. the DAG under the root is complete: the envelope is a single raw block (CIDv1, codec raw
 *      0x55, gateway/seal/seal.ts), which has no links, so the root block itself must be present;
 *   5. no block lies outside that DAG.
 *
 * Pure apart from the async reader: bytes in, the envelope block out, or ApiError INVALID_CAR.
 */
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ApiError } from './errors.ts'

export interface EnvelopeBlock {
  readonly cid: CID
  readonly bytes: Uint8Array
}

const invalid = (message: string, details: Record<string, unknown> = {}): ApiError => new ApiError('INVALID_CAR', message, details)

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

export async function checkCar(car: Uint8Array, root: CID): Promise<EnvelopeBlock> {
  let reader: CarReader
  try {
    reader = await CarReader.fromBytes(car)
  } catch (e) {
    throw invalid(`car: not a readable CARv1 (${(e as Error).message})`)
  }
  const version = reader.version as number
  if (version !== 1) throw invalid(`car: a CARv${version} was sent; the contract is CARv1`, { version })

  const roots = await reader.getRoots()
  if (roots.length !== 1) throw invalid(`car: the header must name exactly one root (the envelope), it names ${roots.length}`, { roots: roots.map(String) })
  const [first] = roots.map(String)
  if (first !== root.toString()) throw invalid(`car: root ${first} is not manifest.cid ${root.toString()}`, { root: first, manifestCid: root.toString() })

  let envelope: Uint8Array | null = null
  const strays = new Set<string>()
  for await (const block of reader.blocks()) {
    const id = block.cid.toString()
    if (block.cid.multihash.code !== sha256.code) {
      throw invalid(`car: block ${id} uses multihash 0x${block.cid.multihash.code.toString(16)}; only sha2-256 is accepted`, { cid: id })
    }
    const digest = await sha256.digest(block.bytes)
    if (!equalBytes(digest.digest, block.cid.multihash.digest)) {
      throw invalid(`car: the bytes of block ${id} do not hash to its CID (SHA-256 ${Buffer.from(digest.digest).toString('hex')})`, { cid: id })
    }
    if (id === root.toString()) envelope = block.bytes
    else strays.add(id)
  }
  if (envelope === null) throw invalid(`car: the root block ${root.toString()} is missing: the DAG under the root is incomplete`, { missing: [root.toString()] })
  if (root.code !== raw.code) {
    throw invalid(`car: root ${root.toString()} has codec 0x${root.code.toString(16)}; the sealed envelope must be one raw block (0x55)`, { codec: root.code })
  }
  if (strays.size > 0) throw invalid(`car: ${strays.size} block(s) lie outside the DAG under the root: ${[...strays].slice(0, 3).join(', ')}`, { strays: [...strays].slice(0, 10) })
  return { cid: root, bytes: envelope }
}
