/** Human-readable description of any CareLedger key or ciphertext encoding. */
import { CareLedgerError } from '../errors.ts'
import { Kind, kindName } from '../encoding/binary.ts'
import {
  decodeCiphertext,
  decodeMasterPublicKey,
  decodeMasterSecretKey,
  decodeRetrievalKey,
  decodeTransformKey,
  decodeUserKey,
} from '../crypto/abe/codec.ts'
import { decodeEnvelope, envelopeCiphertext } from '../crypto/envelope.ts'
import { readSealedHeader } from '../crypto/sealed-secret.ts'
import { keyValidity } from '../protocol/epoch.ts'
import { decodeDkgStateFile, decodeFrostNonceFile, decodeFrostShareFile } from '../crypto/frost-codec.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export function describeKeyFile(bytes: Uint8Array): string {
  if (bytes.length < 4) throw new CareLedgerError('INVALID_ENCODING', 'file is too short to be a CareLedger encoding', { reason: 'TRUNCATED' })
  const kind = bytes[3]!
  switch (kind) {
    case Kind.MasterPublicKey:
      return `master public key of authority ${hex(decodeMasterPublicKey(bytes).id)}`
    case Kind.MasterSecretKey:
      return `master SECRET key of authority ${hex(decodeMasterSecretKey(bytes).mpk.id)}`
    case Kind.SecretKey:
    case Kind.TransformKey: {
      const k = kind === Kind.SecretKey ? decodeUserKey(bytes) : decodeTransformKey(bytes)
      const validity = keyValidity(k.attributes)
      const own = k.attributes.filter((a) => !a.startsWith('epoch:'))
      return `${kindName(kind)} from authority ${hex(k.authority)} for [${own.join(', ')}], ${validity ? `valid ${validity.from} … ${validity.until} (UTC)` : 'without a validity period (opens only batches sealed before epochs)'}`
    }
    case Kind.RetrievalKey:
      return `retrieval key for authority ${hex(decodeRetrievalKey(bytes).authority)}`
    case Kind.Ciphertext: {
      const c = decodeCiphertext(bytes)
      return `ciphertext from authority ${hex(c.authority)}, ${c.rows.length} rows, policy: ${c.policy}`
    }
    case Kind.Envelope: {
      const e = decodeEnvelope(bytes)
      return `envelope, ${e.sealed.length - 16} bytes sealed, policy: ${envelopeCiphertext(e).policy}`
    }
    case Kind.SealedSecret: {
      const h = readSealedHeader(bytes)
      return `sealed secret "${h.label}": ${h.secretLength} bytes under a passphrase (scrypt N=2^${h.params.log2N}, r=${h.params.r}, p=${h.params.p}; AES-256-GCM)`
    }
    case Kind.FrostSigningShare: {
      const { group, share } = decodeFrostShareFile(bytes)
      return `FROST signing SHARE ${share.index} of ${group.participants} (threshold ${group.threshold}) for group key ${hex(group.groupKey)}`
    }
    case Kind.FrostNonces:
      return `FROST round-one NONCES for ${JSON.stringify(decodeFrostNonceFile(bytes).label)} (secret, single-use)`
    case Kind.FrostDkgState: {
      const s = decodeDkgStateFile(bytes)
      return `FROST DKG STATE of participant ${s.index} of ${s.participants} (threshold ${s.threshold}), ceremony ${hex(s.ceremony)}`
    }
    default:
      return kindName(kind)
  }
}
