/** Configuration: flags > environment > defaults, validated, errors naming the flag or variable. */
import { describe, expect, it } from 'vitest'
import { configTable, loadGatewayConfig, SETTINGS } from '../../gateway/config.ts'
import { isCareLedgerError } from '../../shared/errors.ts'

const fail = (flags: Record<string, unknown>, env: Record<string, string>): string => {
  try {
    loadGatewayConfig(flags, env)
  } catch (e) {
    expect(isCareLedgerError(e, 'INVALID_ARGUMENT')).toBe(true)
    return (e as Error).message
  }
  throw new Error('expected the configuration to be refused')
}

describe('gateway configuration', () => {
  it('has embedded defaults for everything', () => {
    const { config, sources } = loadGatewayConfig({}, {})
    expect(config).toMatchObject({
      mqtt: { host: '0.0.0.0', port: 1883 },
      mqtts: { port: 8883 },
      http: { host: '127.0.0.1', port: 9464 },
      tls: { extraNames: [] },
      disk: { budgetBytes: 1024 * 1024 * 1024, minFreeBytes: 64 * 1024 * 1024, checkIntervalMs: 5000 },
      quarantine: { maxRows: 10_000 },
      validation: { maxBytes: 262_144, maxReadings: 1000, maxFutureMs: 300_000 },
      seal: { intervalSeconds: 5, offlineIntervalSeconds: 60, defaultPolicy: 'role:doctor' },
      sync: { cloudUrl: null, retentionHours: 72 },
      log: { level: 'info' },
      ingest: { lingerMs: 10 },
    })
    expect(config.dataDir).toMatch(/\/\.careledger\/gateway$/)
    expect(Object.values(sources).every((s) => s.kind === 'default')).toBe(true)
  })

  it('takes the ingest commit linger from 0 to 1000 ms and names the variable or flag of anything else (issue 11)', () => {
    expect(loadGatewayConfig({}, { CARELEDGER_INGEST_LINGER_MS: '0' }).config.ingest.lingerMs).toBe(0)
    expect(loadGatewayConfig({ ingestLingerMs: '25' }, {}).config.ingest.lingerMs).toBe(25)
    expect(fail({}, { CARELEDGER_INGEST_LINGER_MS: '-1' })).toContain('CARELEDGER_INGEST_LINGER_MS')
    expect(fail({}, { CARELEDGER_INGEST_LINGER_MS: '5ms' })).toContain('CARELEDGER_INGEST_LINGER_MS')
    expect(fail({ ingestLingerMs: '1001' }, {})).toContain('--ingest-linger-ms')
  })

  it('takes a flag over an environment variable over the default; an empty variable is unset', () => {
    const env = { CARELEDGER_MQTT_PORT: '1999', CARELEDGER_HTTP_PORT: '7000', CARELEDGER_MQTTS_PORT: '', CARELEDGER_TLS_NAMES: 'gw.local, 10.1.2.3', CARELEDGER_CLOUD_URL: 'https://cloud.example/api' }
    const { config, sources } = loadGatewayConfig({ httpPort: '7001', data: '/var/lib/careledger' }, env)
    expect(config.mqtt.port).toBe(1999)
    expect(config.http.port).toBe(7001)
    expect(config.mqtts.port).toBe(8883)
    expect(config.dataDir).toBe('/var/lib/careledger')
    expect(config.tls.extraNames).toEqual(['gw.local', '10.1.2.3'])
    expect(config.sync.cloudUrl).toBe('https://cloud.example/api')
    expect(sources['mqtt.port']).toEqual({ kind: 'env', name: 'CARELEDGER_MQTT_PORT' })
    expect(sources['http.port']).toEqual({ kind: 'flag', name: '--http-port' })
    // Offline sealing is never more frequent than online sealing.
    expect(loadGatewayConfig({ sealIntervalS: '120' }, {}).config.seal).toMatchObject({ intervalSeconds: 120, offlineIntervalSeconds: 120 })
    expect(loadGatewayConfig({}, { CARELEDGER_SEAL_OFFLINE_INTERVAL_S: '30' }).config.seal.offlineIntervalSeconds).toBe(30)
    // A repeatable flag arrives as a list.
    expect(loadGatewayConfig({ tlsName: ['a.example', 'b.example'] }, {}).config.tls.extraNames).toEqual(['a.example', 'b.example'])
  })

  it('names the variable or flag and the value in every error', () => {
    expect(fail({}, { CARELEDGER_MQTT_PORT: 'abc' })).toMatch(/CARELEDGER_MQTT_PORT="abc"/)
    expect(fail({ mqttPort: '70000' }, {})).toMatch(/--mqtt-port="70000": .*65535/)
    expect(fail({}, { CARELEDGER_DISK_BUDGET_MB: '2' })).toMatch(/CARELEDGER_DISK_BUDGET_MB="2"/)
    expect(fail({}, { CARELEDGER_TLS_NAMES: 'ok.example,not a name' })).toMatch(/CARELEDGER_TLS_NAMES=.*"not a name" is neither a DNS name nor an IP/)
    expect(fail({}, { CARELEDGER_CLOUD_URL: 'ftp://x' })).toMatch(/CARELEDGER_CLOUD_URL="ftp:\/\/x": must be an http\(s\) URL/)
    expect(fail({}, { CARELEDGER_LOG_LEVEL: 'loud' })).toMatch(/CARELEDGER_LOG_LEVEL="loud"/)
    // Several problems at once are all reported.
    const both = fail({ httpPort: '-1' }, { CARELEDGER_SEAL_INTERVAL_S: '0' })
    expect(both).toMatch(/--http-port/)
    expect(both).toMatch(/CARELEDGER_SEAL_INTERVAL_S/)
  })

  it('documents every setting in the generated table', () => {
    const table = configTable()
    for (const s of SETTINGS) expect(table).toContain(s.env)
    expect(new Set(SETTINGS.map((s) => s.env)).size).toBe(SETTINGS.length)
  })
})
