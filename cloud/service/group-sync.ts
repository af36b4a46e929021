/**
 * Group fsync (the group commit of databases, applied to plain files): callers that have written
 * files hand over the paths that must reach the disk — file or directory — and wait; paths handed
 * over while a round of fsyncs runs wait for the next round, which syncs all of them at once, each
 * distinct path once. Many envelopes stored by concurrent uploads land in one shard directory, so
 * one directory fsync serves all of them, and the kernel's journal commits the concurrent fsyncs
 * of a round together. A caller's promise settles only when every one of its paths has been
 * fsynced after its write (a round starts after the caller handed its paths over), or rejects with
 * the error of the first path that failed: nothing is reported durable that is not.
 */
import { open } from 'node:fs/promises'

/** fsyncs of one round in flight at once (the libuv pool runs 4 at a time; more queue there). */
const CONCURRENCY = 16

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

interface Waiter {
  readonly paths: readonly string[]
  readonly resolve: () => void
  readonly reject: (e: Error) => void
}

export class GroupSync {
  readonly #sync: (path: string) => Promise<void>
  #waiting: Waiter[] = []
  #running = false
  readonly #stats = { rounds: 0, requested: 0, synced: 0 }

  constructor(sync: (path: string) => Promise<void> = fsyncPath) {
    this.#sync = sync
  }

  /** Resolves once every path has been fsynced after this call. */
  sync(paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#waiting.push({ paths, resolve, reject })
      this.#stats.requested += paths.length
      if (!this.#running) void this.#run()
    })
  }

  /** Rounds run, paths asked for, fsyncs done (fewer than asked: shared by a round). */
  get stats(): { readonly rounds: number; readonly requested: number; readonly synced: number } {
    return { ...this.#stats }
  }

  async #run(): Promise<void> {
    this.#running = true
    try {
      while (this.#waiting.length > 0) {
        const round = this.#waiting
        this.#waiting = []
        const paths = [...new Set(round.flatMap((w) => w.paths))]
        const failed = new Map<string, Error>()
        let at = 0
        const lane = async (): Promise<void> => {
          while (at < paths.length) {
            const p = paths[at++]!
            try {
              await this.#sync(p)
            } catch (e) {
              failed.set(p, e instanceof Error ? e : new Error(String(e)))
            }
          }
        }
        await Promise.all(Array.from({ length: Math.min(CONCURRENCY, paths.length) }, lane))
        this.#stats.rounds++
        this.#stats.synced += paths.length
        for (const w of round) {
          const error = w.paths.map((p) => failed.get(p)).find((e) => e !== undefined)
          if (error) w.reject(error)
          else w.resolve()
        }
      }
    } finally {
      this.#running = false
    }
  }
}
