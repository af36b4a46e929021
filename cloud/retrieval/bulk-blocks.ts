/**
 * POST /v1/blocks — many stored blocks in one answer (docs/api.md §Retrieval): the CIDs asked
 * for, as one CARv1 (application/vnd.ipld.car) holding the blocks this cloud has, in the order
 * asked; those it lacks are left out (the client then tries the IPFS trustless gateways). What a
 * research export fetches: one request per BULK_BLOCKS_MAX ciphertexts instead of one each (a
 * block request costs the cloud ~1 ms of CPU whatever its size; bench:access). Same access as
 * GET /ipfs/{cid}: the `envelope` group, or anyone with CARELEDGER_CLOUD_PUBLIC_IPFS.
 * The client checks every block against its CID: nothing here is trusted.
 */
import type { FastifyInstance } from 'fastify'
import { CID } from 'multiformats/cid'
import { z } from 'zod'
import { blocksCar } from '../../shared/protocol/car.ts'
import { BULK_BLOCKS_MAX } from '../../shared/protocol/evidence.ts'
import type { ServiceContext } from '../service/context.ts'
import { ApiError } from '../service/errors.ts'
import { guard } from '../service/guard.ts'

const Body = z.strictObject({ cids: z.array(z.string().max(200)).min(1).max(BULK_BLOCKS_MAX) })

export function registerBulkBlocks(app: FastifyInstance, ctx: ServiceContext): void {
  const options = ctx.config.retrieval.publicIpfs ? {} : { onRequest: guard(ctx, 'envelope') }
  app.post('/v1/blocks', options, async (req, reply) => {
    const body = Body.safeParse(req.body)
    if (!body.success) {
      const issue = body.error.issues[0]!
      throw new ApiError('INVALID_REQUEST', `${issue.path.join('.') || 'body'}: ${issue.message}`, { field: issue.path.join('.') || 'body' })
    }
    const cids = body.data.cids.map((text, i) => {
      try {
        return CID.parse(text)
      } catch {
        throw new ApiError('INVALID_REQUEST', `cids.${i}: ${JSON.stringify(text.slice(0, 80))} is not a CID`, { field: `cids.${i}` })
      }
    })
    const found: { cid: CID; bytes: Uint8Array }[] = []
    for (const cid of cids) {
      const bytes = await ctx.blocks.get(cid)
      if (bytes) found.push({ cid, bytes })
    }
    const car = await blocksCar(
      found.map((b) => b.cid),
      found,
    )
    return reply
      .type('application/vnd.ipld.car; version=1; order=unk; dups=y')
      .header('cache-control', 'no-store')
      .header('x-careledger-missing', String(cids.length - found.length))
      .send(Buffer.from(car.buffer, car.byteOffset, car.byteLength))
  })
}
