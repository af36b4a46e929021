#!/usr/bin/env node
/**
 * `careledger` — one CLI, one subcommand per role. Each role's commands live beside its code
 * (gateway/cli.ts, cloud/cli.ts, devices/cli.ts, …) and are registered here.
 */
import { Command } from 'commander'
import { runCli } from '../shared/cli/run.ts'
import { gatewayCommand } from '../gateway/cli.ts'
import { CRYPTO_BACKEND_ENV, CRYPTO_BACKEND_FLAG, CRYPTO_BACKEND_HELP, cryptoBackendChoice, initCrypto } from '../shared/cli/crypto-backend.ts'

const program = new Command('careledger')
  .description('CareLedger: bedside vital signs sealed at the edge (CP-ABE), committed to a redactable chain in the cloud')
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError()
  .option(CRYPTO_BACKEND_FLAG, CRYPTO_BACKEND_HELP)
  // The pairing backend: checked before any command runs and handed to threads and child processes.
  // The services load it (the gateway's back office, the cloud); a one-shot command loads it only
  // when asked to by name — with `auto` it keeps noble, quicker than loading mcl for one operation.
  .hook('preAction', async (_root, action) => {
    const choice = cryptoBackendChoice(program.opts<{ cryptoBackend?: string }>().cryptoBackend)
    process.env[CRYPTO_BACKEND_ENV] = choice
    const gatewayStart = action.name() === 'start' && action.parent?.name() === 'gateway'
    if (choice !== 'auto' && !gatewayStart) await initCrypto(choice)
  })

/** `careledger [--crypto-backend <name>] gateway start …`: the one command that runs for months on a Pi. */
function isGatewayStart(args: readonly string[]): boolean {
  let i = 0
  while (i < args.length && args[i]!.startsWith('-')) i += args[i] === '--crypto-backend' ? 2 : 1
  return args[i] === 'gateway' && args[i + 1] === 'start'
}

// The gateway process loads the gateway's commands alone: the other roles' modules (fastify,
// ethers, the clients …) were ~20 MB of its heap for nothing (issue 11, docs/operations.md §Capacity).
if (isGatewayStart(process.argv.slice(2))) program.addCommand(gatewayCommand())
else {
  const [{ startCommand }, { authorityCommand }, { policyCommand }, { cloudCommand }, { devicesCommand }, { chainCommand, regulatorCommand }, { addRegulatorWorkflow, supervisionCommand }, { keysCommand }, { accessCommand, researchCommand }] =
    await Promise.all([
      import('./start.ts'),
      import('../shared/cli/authority.ts'),
      import('../shared/cli/policy.ts'),
      import('../cloud/cli.ts'),
      import('../devices/cli.ts'),
      import('../cloud/chain/cli.ts'),
      import('../cloud/supervision/cli.ts'),
      import('../shared/cli/keys.ts'),
      import('../clients/cli.ts'),
    ])
  program.addCommand(startCommand())
  program.addCommand(authorityCommand())
  program.addCommand(policyCommand())
  program.addCommand(gatewayCommand())
  program.addCommand(cloudCommand())
  program.addCommand(devicesCommand())
  program.addCommand(chainCommand())
  program.addCommand(addRegulatorWorkflow(regulatorCommand()))
  program.addCommand(supervisionCommand())
  program.addCommand(keysCommand())
  program.addCommand(accessCommand())
  program.addCommand(researchCommand())
}

await runCli(program)
