/** Throw-away directories for a test file, all removed after it: `const temp = tempDirs(); temp('label')`. */
import { afterAll } from 'vitest'
import { tempDataDir } from './gateway-process.ts'

export function tempDirs(): (label: string) => string {
  const made: Array<{ cleanup(): void }> = []
  afterAll(() => made.forEach((d) => d.cleanup()))
  return (label) => {
    const d = tempDataDir(label)
    made.push(d)
    return d.dir
  }
}
