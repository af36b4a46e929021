/**
 * bench:cloud §5 alone (bench/lib/append-http.ts): sustained append over HTTP from several gateways
 * into a real `careledger cloud start`, bulk and single uploads, records/s and the cloud's CPU per
 * record. The same environment variables tune it (BENCH_APPEND_GATEWAYS, BENCH_APPEND_RECORDS,
 * BENCH_APPEND_BULK, BENCH_APPEND_SINGLE); BENCH_CLOUD_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=DIR'
 * profiles the cloud process. BENCH_RUNS (1) repeats it. BENCH_APPEND_JSON=1 prints each result as a
 * JSON line (how bench:cloud §5 runs it: in a process of its own, so that the load generator does
 * not carry the heap of the sections before it).
 */
import os from 'node:os'
import { appendHttpOptions, appendHttpSection } from './lib/append-http.ts'

const log = (s: string): void => void process.stderr.write(`${s}\n`)
const runs = Number(process.env.BENCH_RUNS ?? 1)
log(`bench append-http on ${os.availableParallelism()}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
for (let r = 0; r < runs; r++) {
  const result = await appendHttpSection(appendHttpOptions(log))
  // BENCH_APPEND_JSON=1 (bench:cloud §5 runs this file as a child): the result as one JSON line instead.
  if (process.env.BENCH_APPEND_JSON === '1') process.stdout.write(`${JSON.stringify(result)}\n`)
  else process.stdout.write(`${result.report}\nload average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n\n`)
}
