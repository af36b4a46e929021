/** `careledger policy check` — parse a policy, show its canonical form and LSSS, test an attribute set. */
import { Command } from 'commander'
import { isCareLedgerError } from '../errors.ts'
import { compilePolicy } from '../crypto/abe/fabeo.ts'
import { ORDER } from '../crypto/abe/groups.ts'
import { reconstruct } from '../crypto/policy/lsss.ts'
import { canonicalAttribute } from '../crypto/policy/attribute.ts'

const signed = (x: bigint): string => (x > ORDER / 2n ? `-${ORDER - x}` : `${x}`)

export function policyCommand(): Command {
  const cmd = new Command('policy').description('access policies: check syntax, show the LSSS, test attributes')
  cmd
    .command('check')
    .description('parse a policy and print its canonical form and LSSS matrix')
    .argument('<policy>', 'e.g. "(role:doctor AND hospital:h1) OR patient:p-7f3a"')
    .option('-a, --attributes <list>', 'comma-separated attributes to test against the policy')
    .action((policy: string, opts: { attributes?: string }) => {
      try {
        const { text, lsss, tree } = compilePolicy(policy)
        console.log(`canonical: ${text}`)
        console.log(`rows: ${lsss.rho.length}, columns: ${lsss.cols}`)
        lsss.rows.forEach((row, i) => console.log(`  ${lsss.rho[i]!.padEnd(28)} [${row.map(signed).join(', ')}]`))
        if (opts.attributes !== undefined) {
          const attrs = new Set(opts.attributes.split(',').map((a) => canonicalAttribute(a.trim())))
          const sol = reconstruct(tree, attrs, ORDER)
          console.log(sol ? `satisfied by rows ${sol.rows.map((r) => lsss.rho[r]).join(', ')}` : 'NOT satisfied')
        }
      } catch (e) {
        if (isCareLedgerError(e, 'INVALID_POLICY') && typeof e.info.position === 'number') {
          process.stderr.write(`${policy}\n${' '.repeat(e.info.position)}^\n`)
        }
        throw e
      }
    })
  return cmd
}
