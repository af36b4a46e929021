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

const program = new Command('careledger')
  .description('CareLedger: bedside vital signs sealed at the edge (CP-ABE), committed to a redactable chain in the cloud')
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError()

program.addCommand(startCommand())
program.addCommand(authorityCommand())
program.addCommand(policyCommand())
program.addCommand(gatewayCommand())
program.addCommand(cloudCommand())
program.addCommand(devicesCommand())
program.addCommand(chainCommand())
program.addCommand(regulatorCommand())
program.addCommand(keysCommand())

await runCli(program)
