#!/usr/bin/env node
/**
 * `careledger` — one CLI, one subcommand per role. Each role's commands live beside its code
 * (gateway/cli.ts, cloud/cli.ts, devices/cli.ts, …) and are registered here.
 */
import { Command } from 'commander'
import { authorityCommand } from '../shared/cli/authority.ts'
import { policyCommand } from '../shared/cli/policy.ts'
import { keysCommand } from '../shared/cli/keys.ts'
import { startCommand } from './start.ts'
import { runCli } from '../shared/cli/run.ts'
import { gatewayCommand } from '../gateway/cli.ts'
import { cloudCommand } from '../cloud/cli.ts'
import { devicesCommand } from '../devices/cli.ts'
import { chainCommand, regulatorCommand } from '../cloud/chain/cli.ts'
import { accessCommand, researchCommand } from '../clients/cli.ts'
import { addRegulatorWorkflow, supervisionCommand } from '../cloud/supervision/cli.ts'
import { addRegulatorDkg } from '../cloud/supervision/dkg-cli.ts'
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

program.addCommand(startCommand())
program.addCommand(authorityCommand())
program.addCommand(policyCommand())
program.addCommand(gatewayCommand())
program.addCommand(cloudCommand())
program.addCommand(devicesCommand())
program.addCommand(chainCommand())
program.addCommand(addRegulatorDkg(addRegulatorWorkflow(regulatorCommand())))
program.addCommand(supervisionCommand())
program.addCommand(keysCommand())
program.addCommand(accessCommand())
program.addCommand(researchCommand())

await runCli(program)
