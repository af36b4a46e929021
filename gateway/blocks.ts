/**
 * The gateway's IPFS blockstore: a Helia *light* node (no libp2p, no routers, no HTTP gateways —
 * nothing dials out and nothing listens) over a file-system blockstore in `<data>/blocks`.
 * research/experiments.md §1a: createHeliaLight + FsBlockstore works fully offline.
 */
import { join } from 'node:path'
import { createHeliaLight } from 'helia'
import { FsBlockstore } from 'blockstore-fs'
import { FsDatastore } from 'datastore-fs'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

export interface BlockNode {
  readonly blockstore: Blockstore
  stop(): Promise<void>
}

export async function openBlockNode(dataDir: string): Promise<BlockNode> {
  const helia = createHeliaLight({ blockstore: new FsBlockstore(join(dataDir, 'blocks')), datastore: new FsDatastore(join(dataDir, 'helia')) })
  await helia.start()
  return { blockstore: helia.blockstore as unknown as Blockstore, stop: async () => void (await helia.stop()) }
}

/** A whole block; `offline` so a missing block fails at once instead of waiting forever. */
export async function readBlock(blocks: Blockstore, cid: CID): Promise<Uint8Array> {
  const out = blocks.get(cid, { offline: true } as never) as unknown
  if (out instanceof Uint8Array) return out
  const chunks: Uint8Array[] = []
  for await (const c of out as AsyncIterable<Uint8Array>) chunks.push(c)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}
