/** onRequest hook for people's endpoints: a bearer token whose role may reach the group, checked before any body is read. */
import type { FastifyRequest } from 'fastify'
import { authorizePerson } from '../access/request-auth.ts'
import type { AccessGroup } from '../access/roles.ts'
import type { ServiceContext } from './context.ts'

export function guard(ctx: ServiceContext, group: AccessGroup) {
  return async (req: FastifyRequest): Promise<void> => {
    req.principal = await authorizePerson(ctx.tokens, req.headers.authorization, group, ctx.now())
  }
}
