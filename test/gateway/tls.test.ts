/** The gateway CA and the MQTTS server certificate, on real files. */
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ensureCa, ensureServerCertificate, readCaPem } from '../../gateway/tls.ts'
import { tempDataDir } from '../helpers/gateway-process.ts'

const cleanups: Array<() => void> = []
afterEach(() => cleanups.splice(0).forEach((c) => c()))
const fresh = () => {
  const t = tempDataDir('tls')
  cleanups.push(t.cleanup)
  return t.dir
}
const DAY = 86_400_000

describe('gateway TLS', () => {
  it('creates an ECDSA P-256 CA (10 years) and a server certificate (1 year) with the expected names; keys are 0600', async () => {
    const dir = fresh()
    expect(() => readCaPem(dir)).toThrow(/no gateway CA/)
    const r = await ensureServerCertificate(dir, { extraNames: ['gw.ward3.example', '192.0.2.10'] })
    expect(r).toMatchObject({ caCreated: true, issued: 'missing' })
    const ca = new X509Certificate(r.caPem)
    const server = new X509Certificate(readFileSync(join(dir, 'tls/server.crt')))
    expect(ca.ca).toBe(true)
    expect(ca.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' })
    expect(server.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' })
    expect(new Date(ca.validTo).getTime() - Date.now()).toBeGreaterThan(3640 * DAY)
    expect(new Date(server.validTo).getTime() - Date.now()).toBeGreaterThan(360 * DAY)
    expect(new Date(server.validTo).getTime() - Date.now()).toBeLessThan(366 * DAY)
    expect(server.verify(ca.publicKey)).toBe(true)
    expect(server.checkIssued(ca)).toBe(true)
    for (const n of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', `DNS:${hostname()}`, 'DNS:gw.ward3.example', 'IP Address:192.0.2.10']) {
      expect(server.subjectAltName).toContain(n)
    }
    expect(server.checkHost('localhost')).toBe('localhost')
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(statSync(join(dir, 'tls/ca.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'tls/server.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'tls')).mode & 0o777).toBe(0o700)
    expect(r.cert).toContain(r.caPem.trim()) // the chain served to devices ends with the CA
    expect(readCaPem(dir)).toBe(r.caPem)
  })

  it('reuses both on restart, renews the server certificate 30 days before expiry or when names change, never the CA', async () => {
    const dir = fresh()
    const first = await ensureServerCertificate(dir, { extraNames: ['a.example'] })
    const again = await ensureServerCertificate(dir, { extraNames: ['a.example'] })
    expect(again).toMatchObject({ caCreated: false, issued: null, key: first.key, cert: first.cert })
    // 320 days later: 45 days left, nothing to do; 340 days later: 25 days left, renew.
    expect((await ensureServerCertificate(dir, { extraNames: ['a.example'], now: new Date(Date.now() + 320 * DAY) })).issued).toBeNull()
    const renewed = await ensureServerCertificate(dir, { extraNames: ['a.example'], now: new Date(Date.now() + 340 * DAY) })
    expect(renewed.issued).toBe('expiring')
    expect(renewed.key).not.toBe(first.key)
    expect(renewed.caPem).toBe(first.caPem)
    expect((await ensureServerCertificate(dir, { extraNames: ['b.example'] })).issued).toBe('names-changed')
    expect((await ensureCa(dir)).created).toBe(false)
  })

  it('repairs a server key and certificate that do not belong together (crash between the two writes)', async () => {
    const dir = fresh()
    await ensureServerCertificate(dir)
    const other = fresh()
    await ensureServerCertificate(other)
    writeFileSync(join(dir, 'tls/server.key'), readFileSync(join(other, 'tls/server.key')))
    const r = await ensureServerCertificate(dir)
    expect(r.issued).toBe('key-mismatch')
    expect(new X509Certificate(readFileSync(join(dir, 'tls/server.crt'))).checkPrivateKey((await import('node:crypto')).createPrivateKey(r.key))).toBe(true)
  })

  it('a restarted gateway checks its certificate without loading @peculiar/x509 (issue 11: its modules stay out of RSS)', async () => {
    const dir = fresh()
    await ensureServerCertificate(dir)
    // A fresh process, as a restarted gateway: record every module it resolves.
    const script = [
      "const loaded = []",
      "process.getBuiltinModule('node:module').registerHooks({ resolve: (s, c, next) => { const r = next(s, c); loaded.push(r.url); return r } })",
      "await import('./gateway/runtime.ts')",
      "const { ensureServerCertificate } = await import('./gateway/tls.ts')",
      `const r = await ensureServerCertificate(${JSON.stringify(dir)})`,
      "console.log(JSON.stringify({ issued: r.issued, x509: loaded.filter((u) => /@peculiar|reflect-metadata|tsyringe/.test(u)) }))",
    ].join(';')
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8' })
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ issued: null, x509: [] })
  })
})
