/**
 * A SyncPool worker for test/cloud/sync-pool.test.ts: 'square' answers, 'crash' dies, 'slow' squares
 * after a pause; chunks the caller took back are answered [] (claimChunk), except by 'slow-noclaim',
 * which computes every chunk it is sent, as a worker that ignores claims would; its second port
 * answers mapAsync.
 */
import { workerData, type MessagePort } from 'node:worker_threads'
import { answered, claimChunk, fatal, serveAsync } from '../../cloud/chain/sync-pool.ts'

const { port, asyncPort, flag, data } = workerData as { port: MessagePort; asyncPort: MessagePort; flag: Int32Array; data: { failToLoad?: boolean } }
if (data.failToLoad) fatal(flag)
else {
  // mapAsync: 'square' (after 20 ms), 'throw' fails the request, 'exit' ends the thread.
  serveAsync(asyncPort, (op, items: number[]) => {
    if (op === 'throw') throw new Error('failed on purpose')
    if (op === 'exit') process.exit(3)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    return items.map((x) => x * x)
  })
  port.on('message', (msg: { op: string; items: number[]; claim?: Int32Array }) => {
    if (msg.op === 'crash') return fatal(flag)
    if (msg.op !== 'slow-noclaim' && !claimChunk(msg)) {
      port.postMessage([])
      return answered(flag)
    }
    if (msg.op.startsWith('slow')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
    port.postMessage(msg.items.map((x) => x * x))
    answered(flag)
  })
}
