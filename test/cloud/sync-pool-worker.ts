/** A SyncPool worker for test/cloud/sync-pool.test.ts: 'square' answers, 'crash' dies, 'slow' squares after a pause. */
import { workerData, type MessagePort } from 'node:worker_threads'
import { answered, fatal } from '../../cloud/chain/sync-pool.ts'

const { port, flag, data } = workerData as { port: MessagePort; flag: Int32Array; data: { failToLoad?: boolean } }
if (data.failToLoad) fatal(flag)
else {
  port.on('message', (msg: { op: string; items: number[] }) => {
    if (msg.op === 'crash') return fatal(flag)
    if (msg.op === 'slow') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
    port.postMessage(msg.items.map((x) => x * x))
    answered(flag)
  })
}
