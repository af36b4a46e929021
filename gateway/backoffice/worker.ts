/**
 * The back office on its own worker thread (plugin.ts starts it during bursts, or always with
 * CARELEDGER_BACKOFFICE_THREAD=worker): office.ts behind the worker's parentPort.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { runBackoffice } from './office.ts'
import type { BackofficeMessage, BackofficeOptions } from './protocol.ts'

const port = parentPort!
await runBackoffice(workerData as BackofficeOptions, {
  inline: false,
  postMessage: (msg) => port.postMessage(msg),
  onMessage: (fn) => port.on('message', (m: BackofficeMessage) => fn(m)),
}).catch(() => process.exit(1)) // logged by the back office (crypto_backend_failed)
