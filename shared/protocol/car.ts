/** Raw IPFS blocks: their CIDs, and one block as a CARv1 (the IPLD content-addressed archive): how a gateway uploads a batch and how the cloud's trustless gateway answers `format=car`. */
import { CarBlockIterator, CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

/** CIDv1 of a raw block (raw codec, sha2-256): what IPFS calls these bytes. A sealed envelope is one such block. */
export async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(bytes))
}

export async function singleBlockCar(cid: CID, bytes: Uint8Array | null): Promise<Uint8Array> {
  return blocksCar([cid], bytes ? [{ cid, bytes }] : [])
}

/** A CARv1 of `blocks` in the order given, naming `roots` (the cloud's bulk answer: the CIDs asked for that it holds). */
export async function blocksCar(roots: readonly CID[], blocks: readonly { cid: CID; bytes: Uint8Array }[]): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([...roots])
  const chunks: Uint8Array[] = []
  const drained = (async () => {
    for await (const chunk of out) chunks.push(chunk)
  })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await drained
  return Buffer.concat(chunks)
}

/** The blocks of a CARv1 or CARv2, as the CAR says (nothing checked against the CIDs: the caller does). */
export async function carBlocks(bytes: Uint8Array): Promise<{ cid: CID; bytes: Uint8Array }[]> {
  const out: { cid: CID; bytes: Uint8Array }[] = []
  for await (const b of await CarBlockIterator.fromBytes(bytes)) out.push({ cid: b.cid as CID, bytes: b.bytes })
  return out
}
