/** Read a key file a CareLedger process sealed under the tests' passphrase (test/helpers/test-passphrase.ts). */
import { givenPassphrase } from '../../shared/cli/passphrase.ts'
import { Keyring } from '../../shared/cli/secret-files.ts'
import { TEST_KEY_ENV } from './test-passphrase.ts'

const keyring = new Keyring(givenPassphrase(TEST_KEY_ENV.CARELEDGER_PASSPHRASE!, 'the tests\' passphrase'))

export const readTestSecret = (path: string): Uint8Array => keyring.readSync(path, { warnIfUnsealed: false })

/** Write a key file sealed under the tests' passphrase, as `authority setup` and the services do. */
export const writeTestSecret = (path: string, secret: Uint8Array, label = 'test key'): void => keyring.writeSync(path, secret, { label, force: true })
