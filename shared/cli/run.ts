/**
 * Runs a commander program and turns CareLedgerErrors into one readable line plus exit code 2,
 * so users see "error INVALID_POLICY: policy error at position 12: …" rather than a stack trace.
 */
import type { Command } from 'commander'
import { isCareLedgerError } from '../errors.ts'

export async function runCli(program: Command, argv: readonly string[] = process.argv): Promise<void> {
  try {
    await program.parseAsync(argv as string[])
  } catch (e) {
    if (isCareLedgerError(e)) {
      process.stderr.write(`error ${e.code}: ${e.message}\n`)
      process.exitCode = 2
      return
    }
    throw e
  }
}
