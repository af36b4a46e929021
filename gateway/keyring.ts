/**
 * The keyring a running gateway seals and opens its secrets with (gateway.key, pseudonym.key, the
 * MQTTS CA and server keys, a development authority): CARELEDGER_PASSPHRASE_FILE, _FD or
 * CARELEDGER_PASSPHRASE (docs/operations.md §Passphrases). A fresh data directory without a
 * passphrase is refused; one from before sealed secrets still starts, warning (Keyring.forService).
 * A light module: the ingest thread needs it for the TLS keys and must not load identity.ts.
 */
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Keyring, warnTo } from '../shared/cli/secret-files.ts'

export const gatewayKeyring = (dataDir: string, env: NodeJS.ProcessEnv = process.env, logger?: Logger): Keyring =>
  Keyring.forService('gateway', join(dataDir, 'keys', 'gateway.key'), env, { warn: warnTo(logger) })
