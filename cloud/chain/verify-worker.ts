/**
 * Worker thread of verifyChain: checks chunks of record rows (record.ts checkRecordRow — chameleon
 * opening, content, columns, gateway signature) and answers with the failures and the ids that passed.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { checkRecordRow, type RecordFailure, type RecordRow } from './record.ts'

const { chameleonPublicKey } = workerData as { chameleonPublicKey: Uint8Array }

parentPort!.on('message', (msg: { run: number; chunk: number; rows: RecordRow[] }) => {
  const failures: RecordFailure[] = []
  const passed: number[] = []
  for (const row of msg.rows) {
    const found = checkRecordRow(row, chameleonPublicKey)
    if (found.length === 0) passed.push(row.id)
    else failures.push(...found)
  }
  parentPort!.postMessage({ run: msg.run, chunk: msg.chunk, failures, passed })
})
