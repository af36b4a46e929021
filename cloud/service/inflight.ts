/**
 * Bytes in flight: what the cloud has agreed to read of signed request bodies it has not answered
 * yet, per gateway and in total. A body is admitted, before any of it is read, only if its signed
 * Content-Length fits both caps; it is released when the response is done or the connection is
 * gone. Memory held by bodies (the raw bytes, then their decoded copies) is therefore bounded
 * by a small multiple of the total cap however many gateways upload at once (docs/api.md §Limits).
 */
import { ApiError } from './errors.ts'

export interface InflightLimits {
  /** All gateways together. */
  readonly totalBytes: number
  /** One gateway (all its concurrent requests). */
  readonly gatewayBytes: number
}

export class InflightBudget {
  readonly limits: InflightLimits
  #total = 0
  readonly #byGateway = new Map<string, number>()

  constructor(limits: InflightLimits) {
    this.limits = limits
  }

  get totalBytes(): number {
    return this.#total
  }

  /**
   * Reserve `bytes` for `gatewayId`; returns the release function (idempotent). Throws
   * TOO_MANY_REQUESTS (429) past the gateway's cap and OVERLOADED (503) past the total, both
   * with `retryAfterS`, without reserving anything.
   */
  reserve(gatewayId: string, bytes: number): () => void {
    const mine = this.#byGateway.get(gatewayId) ?? 0
    if (bytes > 0 && mine + bytes > this.limits.gatewayBytes) {
      throw new ApiError('TOO_MANY_REQUESTS', `gateway ${gatewayId} already has ${mine} body bytes in flight; ${bytes} more would pass its cap of ${this.limits.gatewayBytes}: send one upload at a time`, {
        gatewayId,
        inFlightBytes: mine,
        capBytes: this.limits.gatewayBytes,
        retryAfterS: 5,
      })
    }
    if (bytes > 0 && this.#total + bytes > this.limits.totalBytes) {
      throw new ApiError('OVERLOADED', `the cloud is reading ${this.#total} body bytes already; ${bytes} more would pass its cap of ${this.limits.totalBytes}: try again shortly`, {
        inFlightBytes: this.#total,
        capBytes: this.limits.totalBytes,
        retryAfterS: 5,
      })
    }
    this.#total += bytes
    this.#byGateway.set(gatewayId, mine + bytes)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total -= bytes
      const left = (this.#byGateway.get(gatewayId) ?? bytes) - bytes
      if (left <= 0) this.#byGateway.delete(gatewayId)
      else this.#byGateway.set(gatewayId, left)
    }
  }
}
