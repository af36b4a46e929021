/** A sealed batch travels to the cloud as a CARv1 (the IPLD content-addressed archive) of its one block. */
import { CarWriter } from '@ipld/car'
import type { CID } from 'multiformats/cid'

export async function singleBlockCar(cid: CID, bytes: Uint8Array): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([cid])
  const chunks: Uint8Array[] = []
  const drained = (async () => {
    for await (const chunk of out) chunks.push(chunk)
  })()
  await writer.put({ cid, bytes })
  await writer.close()
  await drained
  return Buffer.concat(chunks)
}
