#!/usr/bin/env node
/**
 * `careledger` — one CLI, one subcommand per role. Each role's commands live beside its code
 * (gateway/cli.ts, cloud/cli.ts, devices/cli.ts, …) and are registered in bin/commands.ts. The
 * compile cache goes on first, before any of them is compiled (shared/cli/compile-cache.ts).
 */
import { enableCompileCache } from '../shared/cli/compile-cache.ts'

enableCompileCache()
await import('./commands.ts')
