/** Raw IPFS blocks: their CIDs, and one block as a CARv1 (the IPLD content-addressed archive): how a gateway uploads a batch and how the cloud's trustless gateway answers `format=car`. */
import { CarWriter } from '@ipld/car'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

/** CIDv1 of a raw block (raw codec, sha2-256): what IPFS calls these bytes. A sealed envelope is one such block. */
export async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(bytes))
}

export async function singleBlockCar(cid: CID, bytes: Uint8Array | null): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([cid])
  const chunks: Uint8Array[] = []
  const drained = (async () => {
    for await (const chunk of out) chunks.push(chunk)
  })()
  if (bytes) await writer.put({ cid, bytes })
  await writer.close()
  await drained
  return Buffer.concat(chunks)
}
