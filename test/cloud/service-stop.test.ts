/**
 * SIGTERM stops the cloud even while clients hold connections open in every way a stuck or hostile
 * client can: a TCP connection that never starts TLS, headers that never finish (slowloris), a
 * body that never finishes, an idle keep-alive connection, a response nobody reads. The process
 * exits 0 after its orderly stop (cloud_stopped), and every one of those sockets is closed.
 * A real `careledger cloud start` process, real sockets, over HTTP and HTTPS.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { ensureServerCertificate } from '../../gateway/tls.ts'
import { CloudProcess, tempDataDir } from '../helpers/cloud-process.ts'
import type { Exit } from '../helpers/careledger-process.ts'

const dirs: Array<ReturnType<typeof tempDataDir>> = []
const procs: CloudProcess[] = []
afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL')
  for (const d of dirs.splice(0)) d.cleanup()
})

/** The exit, or null if the process is still running after `ms` (then the caller kills it). */
const exitWithin = (p: Promise<Exit>, ms: number): Promise<Exit | null> => Promise.race([p, new Promise<null>((ok) => setTimeout(() => ok(null), ms).unref())])

describe('stopping with hung client connections', () => {
  it.each(['http', 'https'] as const)('%s: SIGTERM ends the process (exit 0, cloud_stopped) and closes every held socket', { timeout: 120_000 }, async (scheme) => {
    const dir = tempDataDir(`cloud-stop-${scheme}`)
    dirs.push(dir)
    const env: Record<string, string> = {}
    let ca: string | undefined
    if (scheme === 'https') {
      const creds = await ensureServerCertificate(join(dir.dir, 'tls'))
      writeFileSync(join(dir.dir, 'cert.pem'), creds.cert)
      writeFileSync(join(dir.dir, 'key.pem'), creds.key, { mode: 0o600 })
      env.CARELEDGER_CLOUD_TLS_CERT = join(dir.dir, 'cert.pem')
      env.CARELEDGER_CLOUD_TLS_KEY = join(dir.dir, 'key.pem')
      ca = creds.caPem
    }
    const cloud = await CloudProcess.start({ dataDir: join(dir.dir, 'cloud'), env, args: ['--verify-interval-s', '0'] })
    procs.push(cloud)

    const open = async (): Promise<Socket> => {
      if (scheme === 'http') {
        const s = tcpConnect(cloud.port, '127.0.0.1')
        await once(s, 'connect')
        return s
      }
      const s = tlsConnect({ host: '127.0.0.1', port: cloud.port, ca })
      await once(s, 'secureConnect')
      return s
    }
    const held: Socket[] = []
    const hold = (s: Socket): Socket => {
      s.on('error', () => {})
      held.push(s)
      return s
    }
    // 1. TCP only: over HTTPS, a TLS handshake that never starts.
    const silent = hold(tcpConnect(cloud.port, '127.0.0.1'))
    await once(silent, 'connect')
    // 2. Headers that never finish.
    hold(await open()).write('GET /healthz HTTP/1.1\r\nHost: cloud\r\nX-Slow: ')
    // 3. A body that never finishes (an upload declared larger than what arrives).
    hold(await open()).write('POST /v1/gateways/register HTTP/1.1\r\nHost: cloud\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"token":"')
    // 4. An idle keep-alive connection after a complete request and its answer.
    const idle = hold(await open())
    idle.write('GET /healthz HTTP/1.1\r\nHost: cloud\r\n\r\n')
    await once(idle, 'data')
    // 5. Responses nobody reads: pipelined requests for the API description, the socket paused.
    const deaf = hold(await open())
    deaf.pause()
    deaf.write('GET /v1/openapi.json HTTP/1.1\r\nHost: cloud\r\n\r\n'.repeat(100))
    await new Promise((r) => setTimeout(r, 300))
    const closed = held.map((s) => (s.destroyed ? Promise.resolve() : once(s, 'close').then(() => undefined)))

    const exit = await exitWithin(cloud.kill('SIGTERM'), 30_000)
    if (!exit) await cloud.kill('SIGKILL') // (before this fix: an HTTPS socket in its TLS handshake held the stop)
    expect(exit, 'the cloud ignored SIGTERM with connections held open').toEqual({ code: 0, signal: null })
    expect(cloud.logs.at(-1)).toMatchObject({ event: 'cloud_stopped' })
    for (const s of held) s.resume() // read to the end: the server's FIN shows as 'close'
    await Promise.all(closed) // every held socket was closed by the server
    for (const s of held) s.destroy()
  })
})
