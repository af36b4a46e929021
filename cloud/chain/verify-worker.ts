/**
 * Worker thread of verifyChain: checks chunks of record rows (record.ts checkRecordRows — content,
 * columns, gateway signature, and the chunk's chameleon openings as one batch) and answers with the
 * failures and the ids that passed — or redaction jobs: the redacted rows (cloud/supervision/verify-redactions.ts).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { checkRecordRows, type RecordRow } from './record.ts'
import { runRedactionJobs, type RedactionJob } from '../supervision/verify-redactions.ts'

const { chameleonPublicKey } = workerData as { chameleonPublicKey: Uint8Array }

parentPort!.on('message', (msg: { run: number; chunk: number; rows: RecordRow[]; redactions?: RedactionJob[] }) => {
  if (msg.redactions) {
    parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures: runRedactionJobs(msg.redactions, chameleonPublicKey), passed: [] })
    return
  }
  const { failures, passed } = checkRecordRows(msg.rows, chameleonPublicKey)
  parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures, passed })
})
