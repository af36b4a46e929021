/** `careledger gateway …` as a user runs it: real subprocesses, real data directory. */
import type { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { gatewayCommand } from '../../gateway/cli.ts'
import { careledger, tempDataDir } from '../helpers/gateway-process.ts'

let data: ReturnType<typeof tempDataDir>
beforeAll(() => {
  data = tempDataDir('cli')
})
afterAll(() => data.cleanup())

const gw = (...args: string[]) => careledger(['gateway', ...args, ...(args.includes('--help') ? [] : ['--data', data.dir])])

describe('careledger gateway CLI', () => {
  it('has --help at every level', async () => {
    // The top level through a real process; every sub-level in-process (same commander tree).
    const top = await careledger(['gateway', '--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/^Usage: careledger gateway/)
    const levels = [['start'], ['config'], ['ca'], ['device'], ['device', 'add'], ['device', 'list'], ['device', 'remove'], ['device', 'move'], ['device', 'rotate-secret'], ['device', 'disable'], ['device', 'enable']]
    for (const level of levels) {
      let out = ''
      const cmd = gatewayCommand()
      const silence = (c: Command): void => {
        c.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) })
        c.commands.forEach(silence)
      }
      silence(cmd)
      await expect(cmd.parseAsync([...level, '--help'], { from: 'user' }), level.join(' ')).rejects.toMatchObject({ code: 'commander.helpDisplayed' })
      expect(out, level.join(' ')).toMatch(new RegExp(`^Usage: gateway ${level.join(' ')}`))
      if (level[0] === 'start') expect(out).toContain('CARELEDGER_MQTT_PORT') // start documents its environment
      if (level[1] === 'add') expect(out).toContain('--patient <patientId>')
    }
  })

  it('enrols (secret shown once, JSON for scripts), lists without secrets, moves, rotates, disables, removes', async () => {
    const add = await gw('device', 'add', 'bed-1', '--patient', 'P-1', '--json')
    expect(add.code, add.stderr).toBe(0)
    const enrolled = JSON.parse(add.stdout) as Record<string, string>
    expect(Object.keys(enrolled).sort()).toEqual(['deviceId', 'patientId', 'secret'])
    expect(enrolled).toMatchObject({ deviceId: 'bed-1', patientId: 'P-1' })

    const human = await gw('device', 'add', 'bed-2', '--patient', 'P-2')
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/secret \(shown once.*\): [A-Za-z0-9_-]{43}/)
    expect(human.stdout).toContain('careledger/v1/devices/bed-2/readings')

    const list = await gw('device', 'list', '--json')
    const devices = JSON.parse(list.stdout) as Array<Record<string, unknown>>
    expect(devices.map((d) => d.deviceId)).toEqual(['bed-1', 'bed-2'])
    expect(list.stdout).not.toContain(enrolled.secret!)
    expect(list.stdout).not.toMatch(/secret|scrypt/i)
    const table = await gw('device', 'list')
    expect(table.stdout).toMatch(/^DEVICE\s+PATIENT\s+STATUS/)

    expect((await gw('device', 'move', 'bed-1', '--patient', 'P-7')).stdout).toContain('P-1 → P-7')
    const rot = await gw('device', 'rotate-secret', 'bed-1', '--json')
    expect(JSON.parse(rot.stdout).secret).not.toBe(enrolled.secret)
    expect((await gw('device', 'disable', 'bed-2')).stdout).toContain('disabled')
    expect(JSON.parse((await gw('device', 'list', '--json')).stdout)).toMatchObject([{ deviceId: 'bed-1', patientId: 'P-7', disabled: false }, { deviceId: 'bed-2', disabled: true }])
    expect((await gw('device', 'remove', 'bed-2')).stdout).toContain('stored readings are kept')
    expect(JSON.parse((await gw('device', 'list', '--json')).stdout)).toHaveLength(1)
  })

  it('gives one clear line and exit code 2 for bad ids, duplicate enrolment and unknown devices', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['device', 'add', 'Bed#1', '--patient', 'P-1'], /error INVALID_ARGUMENT: device id "Bed#1" must be/],
      [['device', 'add', 'bed-9', '--patient', 'P 1'], /error INVALID_ARGUMENT: patient id "P 1" must be/],
      [['device', 'add', 'bed-1', '--patient', 'P-1'], /error INVALID_ARGUMENT: device "bed-1" is already enrolled/],
      [['device', 'move', 'bed-404', '--patient', 'P-1'], /error INVALID_ARGUMENT: device "bed-404" is not enrolled/],
      [['device', 'remove', 'bed-404'], /is not enrolled/],
      [['device', 'rotate-secret', 'bed-404'], /is not enrolled/],
    ]
    const results = await Promise.all(cases.map(([args]) => gw(...args)))
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).toBe(2)
      expect(r.stderr).toMatch(cases[i]![1])
      expect(r.stderr.trim().split('\n')).toHaveLength(1) // no stack trace
    })
    const missing = await gw('device', 'add', 'bed-3')
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/required option '--patient <patientId>'/)
  })

  it('refuses a bad configuration naming the flag or variable, before starting anything', async () => {
    const flag = await careledger(['gateway', 'start', '--data', data.dir, '--mqtt-port', 'abc'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toMatch(/--mqtt-port="abc"/)
    const env = await careledger(['gateway', 'start', '--data', data.dir], { CARELEDGER_HTTP_PORT: '99999' })
    expect(env.code).toBe(2)
    expect(env.stderr).toMatch(/CARELEDGER_HTTP_PORT="99999"/)
    const cfg = await careledger(['gateway', 'config', '--json'], { CARELEDGER_RETENTION_HOURS: '24' })
    expect(JSON.parse(cfg.stdout)).toMatchObject({ config: { sync: { retentionHours: 24 } }, sources: { 'sync.retentionHours': { kind: 'env' } } })
  })

  it('prints the CA certificate for devices, creating it on first use and then reusing it', async () => {
    const first = await gw('ca')
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\n$/)
    expect(first.stderr).toMatch(/created a new gateway CA/)
    const second = await gw('ca')
    expect(second.stdout).toBe(first.stdout)
    expect(second.stderr).not.toMatch(/created/)
  })
})
