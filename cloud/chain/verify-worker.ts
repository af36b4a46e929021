/**
 * Worker thread of verifyChain: checks chunks of record rows (record.ts checkRecordRows — content,
 * columns, gateway signature, and the chunk's chameleon openings as one batch) and answers with the
 * failures and the ids that passed. Redacted rows and redaction log entries are checked on the
 * calling thread (verify.ts), so a worker never loads the supervisory code (ethers, FROST).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { checkRecordRows, type RecordRow } from './record.ts'

const { chameleonPublicKey } = workerData as { chameleonPublicKey: Uint8Array }

parentPort!.on('message', (msg: { run: number; chunk: number; rows: RecordRow[] }) => {
  const { failures, passed } = checkRecordRows(msg.rows, chameleonPublicKey)
  parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures, passed })
})
