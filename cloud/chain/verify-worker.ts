/**
 * Worker thread of verifyChain: checks chunks of record rows (record.ts checkRecordRows — content,
 * columns, gateway signature, and the chunk's chameleon openings as one batch) and answers with the
 * failures and the ids that passed — or redaction jobs: the redacted rows (cloud/supervision/verify-redactions.ts).
 *
 * The redaction checks are imported on the first job that needs them: they bring the supervisory
 * policy code (ethers, FROST), ~0.3 s of CPU to load, which a chain without redactions never uses
 * (docs/operations.md §Capacity, cold `chain verify`). Messages are handled in order, so a chunk
 * that arrives while the import is under way waits behind it.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { checkRecordRows, type RecordRow } from './record.ts'
import type { RedactionJob } from '../supervision/verify-redactions.ts'

const { chameleonPublicKey } = workerData as { chameleonPublicKey: Uint8Array }

type Message = { run: number; chunk: number; rows: RecordRow[]; redactions?: RedactionJob[] }

let redactionChecks: Promise<typeof import('../supervision/verify-redactions.ts')> | null = null
let queue: Promise<void> = Promise.resolve()

function handle(msg: Message): void | Promise<void> {
  if (msg.redactions) {
    const jobs = msg.redactions
    return (redactionChecks ??= import('../supervision/verify-redactions.ts')).then(({ runRedactionJobs }) => {
      parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures: runRedactionJobs(jobs, chameleonPublicKey), passed: [] })
    })
  }
  const { failures, passed } = checkRecordRows(msg.rows, chameleonPublicKey)
  parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures, passed })
}

parentPort!.on('message', (msg: Message) => {
  queue = queue.then(() => handle(msg))
  // A failed import or check is the thread's error: verifyChain rejects the run with it.
  queue.catch((e: unknown) => setImmediate(() => { throw e }))
})
