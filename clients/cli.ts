/**
 * The people's retrieval commands — `careledger access read` (doctors, patients) and
 * `careledger research export` (research institutions). Only the options live here; the work
 * (and its imports: the curves, Helia) loads when a command runs, not with every CLI start.
 */
import { Command, Option } from 'commander'
import { DEFAULT_LATENESS_MS } from '../shared/protocol/evidence.ts'
import { VITAL_TYPES } from '../shared/schema/vitals.ts'

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--cloud <url>', 'the cloud (env CARELEDGER_CLOUD_URL)')
    .option('--token <clt_…>', 'your API token (env CARELEDGER_TOKEN; prefer the variable: arguments are visible to other users)')
    .option('--key <file>', 'your attribute key (authority keygen)')
    .option('--outsource', 'let the cloud do the pairings with a transformation key (Green–Hohenberger–Waters); only the last step runs here')
    .option('--transform-key <file>', 'with --outsource: the transformation key to hand the cloud (authority outsource); default: a fresh split of --key')
    .option('--retrieval-key <file>', 'with --transform-key: your retrieval key')
    .option('--gateway <url>', 'also fetch blocks from this IPFS trustless gateway, after the cloud\'s (repeatable; no token is sent to it)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--block-timeout-s <s>', 'give up on a block after this long', '15')
    .option('--workers <n>', 'threads that verify proofs and decrypt while the cloud answers (0: in the main thread; default: the cores, at most 4, for answers of 200 records or more)')
    .option('--ipfs-only', 'fetch every block through IPFS (the trustless gateways, one request a block) instead of in bulk from the cloud first')
    .option('--state <dir>', 'where the pinned signing key and the newest verified head are kept (env CARELEDGER_CLIENT_STATE, default ~/.careledger/client)')
    .option('--signing-key <hex>', "the cloud's block-signing public key, obtained independently (otherwise pinned on first use)")
    .option('--expect-head <height:hash>', 'a head obtained independently: the answer must extend it')
    .requiredOption('--from <time>', 'start: RFC 3339 (2026-07-01T08:00:00Z), a UTC date (2026-07-01), epoch ms, or relative (-24h, -7d)')
    .option('--to <time>', 'end (default: now)')
    .addOption(new Option('--lateness-min <minutes>', 'readings reaching the gateway this much after --to still count').default(String(DEFAULT_LATENESS_MS / 60_000)))
}

export function accessCommand(): Command {
  const cmd = new Command('access').description("read patients' records as a doctor or a patient (verified against the chain, decrypted here)")
  const read = new Command('read')
    .description("a patient's readings over a time range: verified (inclusion proofs, signed head, stream links), fetched by CID through IPFS (Helia), decrypted with your key")
    .requiredOption('--patient <id or pseudonym>', "the patient's pseudonym p-…, or the hospital's patient id with --pseudonym-key")
    .option('--pseudonym-key <file>', "the hospital's pseudonym key (env CARELEDGER_PSEUDONYM_KEY_FILE), to read by patient id")
    .option('--type <list>', `only these vital types (${VITAL_TYPES.join(', ')})`)
    .addOption(new Option('--format <format>', 'output').choices(['table', 'json', 'csv']).default('table'))
    .option('-o, --out <file>', 'write the output to a file instead of stdout')
  addCommonOptions(read).action(async (o) => (await import('./read.ts')).runRead(o))
  return cmd.addCommand(read)
}

export function researchCommand(): Command {
  const cmd = new Command('research').description('research data sets that prove their completeness')
  const exp = new Command('export')
    .description('export readings of some vital types over a time range: every device stream verified complete (stream links, boundary batches), every ciphertext fetched by CID and checked; CSV, FHIR R4 ndjson and a manifest of what was verified')
    .requiredOption('--type <list>', `vital types (${VITAL_TYPES.join(', ')})`)
    .requiredOption('-o, --out <dir>', 'a new directory for readings.csv, observations.ndjson and manifest.json')
    .option('--patient <id or pseudonym>', 'only this patient')
    .option('--pseudonym-key <file>', "the hospital's pseudonym key, for --patient by patient id")
    .option('--allow-gaps', 'export even when the cloud admits missing batches (listed in the manifest); otherwise the export fails')
    .option('--progress', 'show the progress bar even when stderr is not a terminal')
    .option('--force', 'replace an existing output directory')
  addCommonOptions(exp).action(async (o) => (await import('./export.ts')).runExport(o))
  return cmd.addCommand(exp)
}
