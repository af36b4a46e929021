/**
 * Where `careledger gateway register` takes the one-time enrolment token from (issue 8, item 15).
 * A token on the command line (`--token`) is visible to every user of the machine in `ps` and lands
 * in shell history, so it also comes from:
 *
 *   --token-file <path>            a file (e.g. a secret mounted by the orchestrator)
 *   --token-file -                 standard input: `… invite --json | jq -r .token | careledger gateway register --token-file - …`
 *   CARELEDGER_ENROLMENT_TOKEN     the environment
 *
 * Exactly one source; surrounding white space (a trailing newline) is dropped.
 */
import { readFileSync } from 'node:fs'
import { CareLedgerError } from '../../shared/errors.ts'

export const ENROLMENT_TOKEN_ENV = 'CARELEDGER_ENROLMENT_TOKEN'

export interface TokenSources {
  readonly token?: string
  readonly tokenFile?: string
}

/** The token and where it came from; throws INVALID_ARGUMENT naming the sources when not exactly one is given. */
export function readEnrolmentToken(opts: TokenSources, env: NodeJS.ProcessEnv = process.env, readStdin: () => string = () => readFileSync(0, 'utf8')): { token: string; source: string } {
  const given: Array<[string, () => string]> = []
  if (opts.token !== undefined) given.push(['--token', () => opts.token!])
  if (opts.tokenFile !== undefined) {
    const file = opts.tokenFile
    given.push([file === '-' ? 'standard input (--token-file -)' : `--token-file ${file}`, () => (file === '-' ? readStdin() : readTokenFile(file))])
  }
  if (env[ENROLMENT_TOKEN_ENV]) given.push([ENROLMENT_TOKEN_ENV, () => env[ENROLMENT_TOKEN_ENV]!])
  if (given.length === 0) {
    throw new CareLedgerError('INVALID_ARGUMENT', `no enrolment token: give it with --token-file <path> (or - for standard input), the environment variable ${ENROLMENT_TOKEN_ENV}, or --token (visible in ps)`, {})
  }
  if (given.length > 1) throw new CareLedgerError('INVALID_ARGUMENT', `the enrolment token is given more than once (${given.map(([s]) => s).join(', ')}); give it one way`, { sources: given.map(([s]) => s) })
  const [source, read] = given[0]!
  const token = read().trim()
  if (token === '') throw new CareLedgerError('INVALID_ARGUMENT', `the enrolment token from ${source} is empty`, { source })
  return { token, source }
}

function readTokenFile(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw new CareLedgerError('INVALID_ARGUMENT', `cannot read the enrolment token file ${path}: ${(e as Error).message}`, { path })
  }
}
