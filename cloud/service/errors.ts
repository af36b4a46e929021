/**
 * The API's error model (docs/api.md §Errors): every error is JSON
 * `{"error": {"code", "message", "details"}}` with the status its code implies.
 */
export const API_ERROR_STATUS = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  STALE_REQUEST: 401,
  REPLAYED_REQUEST: 401,
  UNKNOWN_GATEWAY: 401,
  BAD_SIGNATURE: 401,
  BAD_DIGEST: 401,
  UNSUPPORTED_SIGNATURE: 401,
  INVALID_REQUEST: 400,
  INVALID_MANIFEST: 400,
  INVALID_CAR: 400,
  CONFLICT: 409,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  TOO_MANY_REQUESTS: 429,
  OVERLOADED: 503,
  DAMAGED: 503,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
} as const

export type ApiErrorCode = keyof typeof API_ERROR_STATUS

export interface ApiErrorBody {
  readonly code: ApiErrorCode
  readonly message: string
  readonly details: Readonly<Record<string, unknown>>
}

export class ApiError extends Error {
  readonly code: ApiErrorCode
  readonly status: number
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ApiErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ApiError'
    this.code = code
    this.status = API_ERROR_STATUS[code]
    this.details = details
  }

  toJSON(): ApiErrorBody {
    return { code: this.code, message: this.message, details: this.details }
  }
}

export const isApiError = (e: unknown): e is ApiError => e instanceof ApiError
