/**
 * The subcommands of `careledger` (bin/careledger.ts). Each is loaded only when asked for by name:
 * `careledger chain verify` need not compile the gateway, IPFS or EVM code (~0.3 s of CPU); help,
 * and anything not named here, loads them all.
 */
import { Command } from 'commander'
import { runCli } from '../shared/cli/run.ts'
import { CRYPTO_BACKEND_ENV, CRYPTO_BACKEND_FLAG, CRYPTO_BACKEND_HELP, cryptoBackendChoice, initCrypto } from '../shared/cli/crypto-backend.ts'

/** In the order `careledger --help` lists them. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./start.ts')).startCommand(),
  authority: async () => (await import('../shared/cli/authority.ts')).authorityCommand(),
  policy: async () => (await import('../shared/cli/policy.ts')).policyCommand(),
  gateway: async () => (await import('../gateway/cli.ts')).gatewayCommand(),
  cloud: async () => (await import('../cloud/cli.ts')).cloudCommand(),
  devices: async () => (await import('../devices/cli.ts')).devicesCommand(),
  chain: async () => (await import('../cloud/chain/cli.ts')).chainCommand(),
  regulator: async () => {
    const [{ regulatorCommand }, { addRegulatorWorkflow }, { addRegulatorDkg }] = await Promise.all([import('../cloud/chain/cli.ts'), import('../cloud/supervision/cli.ts'), import('../cloud/supervision/dkg-cli.ts')])
    return addRegulatorDkg(addRegulatorWorkflow(regulatorCommand()))
  },
  supervision: async () => (await import('../cloud/supervision/cli.ts')).supervisionCommand(),
  keys: async () => (await import('../shared/cli/keys.ts')).keysCommand(),
  access: async () => (await import('../clients/cli.ts')).accessCommand(),
  research: async () => (await import('../clients/cli.ts')).researchCommand(),
}

/** The subcommand the arguments name (skipping the root's own options), or null. */
function namedCommand(args: readonly string[]): string | null {
  const valued = CRYPTO_BACKEND_FLAG.split(' ')[0]!
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === valued) i++
    else if (!a.startsWith('-')) return Object.hasOwn(COMMANDS, a) ? a : null
  }
  return null
}

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

const named = namedCommand(process.argv.slice(2))
const loaders = named ? [COMMANDS[named]!] : Object.values(COMMANDS)
for (const command of await Promise.all(loaders.map((load) => load()))) program.addCommand(command)

await runCli(program)
