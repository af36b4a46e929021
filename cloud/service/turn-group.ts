/**
 * Writes handed over during one turn of the event loop, carried out together at its end
 * (setImmediate): the envelope stores put a bulk upload's blocks in one transaction this way. Each
 * caller's promise settles with the group's write: resolved when it is done, rejected with its error.
 */
interface Waiting<T> {
  readonly item: T
  readonly resolve: () => void
  readonly reject: (e: Error) => void
}

export class TurnGroup<T> {
  readonly #write: (items: T[]) => void | Promise<void>
  #waiting: Waiting<T>[] = []

  constructor(write: (items: T[]) => void | Promise<void>) {
    this.#write = write
  }

  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.push({ item, resolve, reject }) === 1) setImmediate(() => void this.flush())
    })
  }

  /** Write what waits now (a store closing); nothing waiting, nothing done. */
  async flush(): Promise<void> {
    const group = this.#waiting
    if (group.length === 0) return
    this.#waiting = []
    try {
      await this.#write(group.map((w) => w.item))
    } catch (e) {
      for (const w of group) w.reject(e as Error)
      return
    }
    for (const w of group) w.resolve()
  }
}
