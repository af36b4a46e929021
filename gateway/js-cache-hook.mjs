// Preloaded (`--import`) by the re-executed gateway process: its .ts modules come stripped from
// CARELEDGER_GATEWAY_JS_CACHE, so Node's TypeScript stripper (amaro, ~17 MB) is never loaded.
// Plain JavaScript on purpose: it runs before any .ts. See gateway/js-cache.ts.
import { registerHooks } from 'node:module'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.env.CARELEDGER_GATEWAY_JS_CACHE
const root = new URL('../', import.meta.url).href

if (dir) {
  registerHooks({
    load(url, context, nextLoad) {
      if (url.startsWith(root) && url.endsWith('.ts')) {
        let source = null
        try {
          source = readFileSync(join(dir, `${decodeURIComponent(url.slice(root.length))}.js`), 'utf8')
        } catch {
          // not stripped in advance: the usual loading
        }
        if (source !== null) return { format: 'module', source, shortCircuit: true }
      }
      return nextLoad(url, context)
    },
  })
}
