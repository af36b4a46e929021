/** ristretto255 encodings that RFC 9496 §4.3.1 decoding must refuse: shared by the fast-path tests. */
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { hexToBytes } from '@noble/hashes/utils.js'

/** RFC 9496 Appendix A.2: non-canonical field encodings and negative field elements. */
export const RFC_BAD = [
  '00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map(hexToBytes)

/** The field prime 2^255 − 19. */
export const p = 2n ** 255n - 19n

/** encode(P) with p added to its field element: the same number mod p, not canonical (wrapped mod 2^256 when it does not fit: then invalid anyway). */
export const plusP = (encoded: Uint8Array): Uint8Array => numberToBytesLE((bytesToNumberLE(encoded) + p) % 2n ** 256n, 32)
