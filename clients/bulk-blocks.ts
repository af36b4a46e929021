/**
 * Blocks from the cloud in bulk, IPFS for the rest: a BlockSource whose getMany asks the cloud
 * for many ciphertexts in one POST /v1/blocks (a CAR) and checks every block against its CID;
 * a block the cloud's answer lacks is fetched through Helia from the trustless gateways
 * (clients/ipfs.ts: the cloud's /ipfs/{cid}, then any --gateway), as `--ipfs-only` does for all.
 * One request per BULK_BLOCKS_MAX blocks instead of one each: what makes an export of small
 * batches fast (docs/operations.md §Capacity).
 */
import { CareLedgerError } from '../shared/errors.ts'
import { carBlocks, rawCid } from '../shared/protocol/car.ts'
import type { CloudApi } from './cloud-api.ts'
import type { HeliaBlockSource } from './ipfs.ts'

/** A block as the bulk answer gave it: its bytes, or why they are not the block. */
export type BulkBlock = Uint8Array | CareLedgerError

/**
 * Check a CAR answer against the CIDs asked: blocks that hash to their CID; BLOCK_MISMATCH errors
 * for those that do not; CIDs the CAR does not hold are absent from the map. Pure but for hashing.
 */
export async function checkBulkAnswer(car: Uint8Array, asked: readonly string[], host: string): Promise<Map<string, BulkBlock>> {
  const wanted = new Set(asked)
  const out = new Map<string, BulkBlock>()
  for (const b of await carBlocks(car)) {
    const cid = b.cid.toString()
    if (!wanted.has(cid) || out.get(cid) instanceof Uint8Array) continue
    const got = await rawCid(b.bytes)
    out.set(
      cid,
      sameBytes(got.multihash.bytes, b.cid.multihash.bytes)
        ? b.bytes
        : new CareLedgerError('INVALID_ARGUMENT', `block ${cid} was answered by ${host} with ${b.bytes.length} bytes that hash to ${got}, not to the CID`, { reason: 'BLOCK_MISMATCH', cid }),
    )
  }
  return out
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

export interface BulkBlockSource extends HeliaBlockSource {
  getMany(cids: readonly string[]): Promise<Map<string, BulkBlock>>
}

export function cloudFirst(api: CloudApi, cloudUrl: string, ipfs: HeliaBlockSource): BulkBlockSource {
  const host = new URL(cloudUrl).host
  return {
    get: (cid) => ipfs.get(cid),
    getMany: async (cids) => {
      try {
        return await checkBulkAnswer(await api.blocks(cids), cids, host)
      } catch {
        return new Map() // a cloud without POST /v1/blocks (or a broken answer): every block through IPFS
      }
    },
    stop: () => ipfs.stop(),
  }
}
