/**
 * Issue 8, item 15: `careledger gateway register` takes the enrolment token from standard input, a
 * file or the environment, so it need not appear in `ps`. A real cloud process and the real CLI.
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CloudProcess, careledger } from '../helpers/cloud-process.ts'
import { BIN, REPO, tempDataDir } from '../helpers/gateway-process.ts'

const cloudDir = tempDataDir('token-cloud')
let cloud: CloudProcess | undefined
const invite = async (name: string): Promise<string> =>
  JSON.parse((await careledger(['cloud', 'gateway', 'invite', '--name', name, '--json', '--data', cloudDir.dir])).stdout).token as string

/** The CLI with `input` on its standard input. */
function cli(args: readonly string[], input: string | null, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: { ...process.env, CARELEDGER_ENROLMENT_TOKEN: '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.once('close', (code) => ok({ code, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

beforeAll(async () => {
  cloud = await CloudProcess.start({ dataDir: cloudDir.dir, args: ['--verify-interval-s', '0'] })
})
afterAll(async () => {
  await cloud?.kill('SIGKILL')
  cloudDir.cleanup()
})

it('reads the token from standard input (--token-file -), a file, or CARELEDGER_ENROLMENT_TOKEN', async () => {
  const dirs = [tempDataDir('tok-stdin'), tempDataDir('tok-file'), tempDataDir('tok-env')]
  try {
    const a = await cli(['gateway', 'register', '--cloud', cloud!.url, '--token-file', '-', '--name', 'tok-stdin', '--data', dirs[0]!.dir], `${await invite('tok-stdin')}\n`)
    expect(a.code, a.stderr).toBe(0)
    expect(a.stdout).toMatch(/registered gateway [0-9a-f]{16} \("tok-stdin"\)/)
    const file = join(dirs[1]!.dir, 'token')
    writeFileSync(file, `${await invite('tok-file')}\n`, { mode: 0o600 })
    const b = await cli(['gateway', 'register', '--cloud', cloud!.url, '--token-file', file, '--name', 'tok-file', '--data', dirs[1]!.dir], null)
    expect(b.code, b.stderr).toBe(0)
    const c = await cli(['gateway', 'register', '--cloud', cloud!.url, '--name', 'tok-env', '--data', dirs[2]!.dir], null, { CARELEDGER_ENROLMENT_TOKEN: await invite('tok-env') })
    expect(c.code, c.stderr).toBe(0)
    expect(`${a.stderr}${b.stderr}${c.stderr}`).not.toMatch(/warning/)
  } finally {
    for (const d of dirs) d.cleanup()
  }
})

it('--token still works but warns; no token, or two sources, is a clear error', async () => {
  const d = tempDataDir('tok-flag')
  try {
    const a = await cli(['gateway', 'register', '--cloud', cloud!.url, '--token', await invite('tok-flag'), '--name', 'tok-flag', '--data', d.dir], null)
    expect(a.code, a.stderr).toBe(0)
    expect(a.stderr).toMatch(/visible to other users in ps/)
    const none = await cli(['gateway', 'register', '--cloud', cloud!.url, '--data', d.dir], null)
    expect(none.code).not.toBe(0)
    expect(none.stderr).toMatch(/no enrolment token: give it with --token-file <path> \(or - for standard input\), the environment variable CARELEDGER_ENROLMENT_TOKEN, or --token/)
    const two = await cli(['gateway', 'register', '--cloud', cloud!.url, '--token', 'cle_x', '--data', d.dir], null, { CARELEDGER_ENROLMENT_TOKEN: 'cle_y' })
    expect(two.stderr).toMatch(/given more than once \(--token, CARELEDGER_ENROLMENT_TOKEN\)/)
    const empty = await cli(['gateway', 'register', '--cloud', cloud!.url, '--token-file', '-', '--data', d.dir], '\n')
    expect(empty.stderr).toMatch(/enrolment token from standard input \(--token-file -\) is empty/)
  } finally {
    d.cleanup()
  }
})
