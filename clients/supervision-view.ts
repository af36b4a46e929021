/**
 * How a regulator's tools (the CLI's `regulator review`, the console's regulator view) describe a
 * pending request: the cloud's RequestView, and who asked — the requester's EVM address when the
 * request carries a requester signature that verifies here (shared/protocol/supervision-request.ts),
 * else only the token name the cloud vouches for.
 */
import type { RequestView as CloudRequestView } from '../cloud/supervision/store.ts'

export type RequestView = CloudRequestView & { readonly requesterVerified?: boolean }

export function describeRequester(r: RequestView): string {
  return `${r.requester} (authenticated by the cloud's token only; no requester signature)`
}
