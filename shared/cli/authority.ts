/**
 * `careledger authority …` — the attribute authority: creates the FABEO master key pair and
 * issues attribute keys to doctors, researchers and patients.
 */
import { join } from 'node:path'
import { Command } from 'commander'
import { keyGen, setup } from '../crypto/abe/fabeo.ts'
import { makeTransformKey } from '../crypto/abe/outsource.ts'
import {
  decodeMasterSecretKey,
  decodeUserKey,
  encodeMasterPublicKey,
  encodeMasterSecretKey,
  encodeRetrievalKey,
  encodeTransformKey,
  encodeUserKey,
} from '../crypto/abe/codec.ts'
import { readKeyFile, writeKeyFile } from './files.ts'
import { describeKeyFile } from './describe.ts'
import { addPassphraseOptions, type PassphraseFlags } from './passphrase.ts'
import { readSecretKeyFile, writeSecretKeyFile } from './secret-files.ts'
import { keygenAttributes, type KeygenOptions } from './keygen.ts'
import { unlockPseudonymKey } from './patients.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const list = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)]

export function authorityCommand(): Command {
  const cmd = new Command('authority').description('attribute authority: master keys and attribute keys (FABEO CP-ABE)')

  cmd
    .command('setup')
    .description('create a master key pair: master-public.key (share it) and master-secret.key (sealed under a passphrase; guard it)')
    .requiredOption('-d, --dir <dir>', 'directory to write the keys into')
    .option('--force', 'overwrite existing key files')
    .action(async (opts: PassphraseFlags & { dir: string; force?: boolean }) => {
      const msk = setup()
      const id = hex(msk.mpk.id)
      // The secret first: without a passphrase nothing is written, not even a public key nothing opens.
      await writeSecretKeyFile(join(opts.dir, 'master-secret.key'), encodeMasterSecretKey(msk), { label: `FABEO master secret key of authority ${id}`, force: opts.force, passphrase: opts })
      writeKeyFile(join(opts.dir, 'master-public.key'), encodeMasterPublicKey(msk.mpk), { secret: false, force: opts.force })
      console.log(`authority ${id}: wrote ${join(opts.dir, 'master-public.key')} and master-secret.key (sealed under the passphrase, mode 0600)`)
      console.log(`publish the authority id ${id}: gateways pin it (CARELEDGER_ABE_AUTHORITY_ID); \`careledger authority show master-public.key\` prints it`)
    })

  cmd
    .command('keygen')
    .description('issue a decryption key for a set of attributes, valid for whole UTC months (docs/security.md §Key expiry)')
    .requiredOption('-m, --master <file>', 'master-secret.key')
    .option('-a, --attributes <list>', 'comma-separated attributes, e.g. role:doctor,hospital:h1 (repeatable)', list)
    .option('--attrs <list>', 'the same as --attributes', list)
    .option('--patient <id or pseudonym>', "a patient's own key: adds patient:<pseudonym> (a patient id needs --pseudonym-key)")
    .option('--pseudonym-key <file>', "the hospital's pseudonym key, to turn a patient id into its pseudonym")
    .option('--valid-from <YYYY-MM>', 'first month the key opens (default: the current month, UTC)')
    .requiredOption('--valid-until <YYYY-MM>', 'last month the key opens; renew the key to extend it')
    .requiredOption('-o, --out <file>', 'where to write the key')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: PassphraseFlags & KeygenOptions & { master: string; out: string; force?: boolean }) => {
      await unlockPseudonymKey(opts.patient, opts.pseudonymKey)
      const { attributes, validity } = keygenAttributes(opts, Date.now())
      const msk = decodeMasterSecretKey(await readSecretKeyFile(opts.master, { passphrase: opts }))
      const key = keyGen(msk, attributes)
      writeKeyFile(opts.out, encodeUserKey(key), { secret: true, force: opts.force })
      console.log(`wrote ${opts.out}: key for [${key.attributes.filter((a) => !a.startsWith('epoch:')).join(', ')}] valid ${validity.from} … ${validity.until} (UTC) from authority ${hex(key.authority)}`)
    })

  cmd
    .command('outsource')
    .description('split a key for outsourced decryption: a transformation key for the proxy, a 32-byte retrieval key you keep')
    .requiredOption('-k, --key <file>', 'your decryption key')
    .requiredOption('--transform-out <file>', 'transformation key to hand to the gateway or cloud')
    .requiredOption('--retrieval-out <file>', 'retrieval key to keep')
    .option('--force', 'overwrite existing files')
    .action(async (opts: { key: string; transformOut: string; retrievalOut: string; force?: boolean }) => {
      const { transformKey, retrievalKey } = makeTransformKey(decodeUserKey(await readSecretKeyFile(opts.key, { warnIfUnsealed: false })))
      writeKeyFile(opts.transformOut, encodeTransformKey(transformKey), { secret: false, force: opts.force })
      writeKeyFile(opts.retrievalOut, encodeRetrievalKey(retrievalKey), { secret: true, force: opts.force })
      console.log(`wrote ${opts.transformOut} (give to the proxy) and ${opts.retrievalOut} (keep, mode 0600)`)
    })

  cmd
    .command('show')
    .description('describe a key file: kind, authority id (compare it with the id the authority published), attributes')
    .argument('<file>')
    .action((file: string) => console.log(describeKeyFile(readKeyFile(file))))

  // The master secret is sealed (shared/cli/secret-files.ts): these read or write it.
  for (const c of cmd.commands) if (c.name() === 'setup' || c.name() === 'keygen') addPassphraseOptions(c)
  return cmd
}
