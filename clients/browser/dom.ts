/**
 * What the console's views share in the page: elements by id, text-only element building (values
 * reach the page as text nodes only, never innerHTML), the status line, and the token form
 * (#token-form, kept in this tab's sessionStorage).
 */
export const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

export function h(tag: string, cls: string | null, ...children: (Node | string | null)[]): HTMLElement {
  const el = document.createElement(tag)
  if (cls) el.className = cls
  for (const c of children) if (c !== null) el.append(c instanceof Node ? c : document.createTextNode(c))
  return el
}

export const say = (text: string, bad = false): void => {
  const m = $('message')
  m.textContent = text
  m.className = bad ? 'bad' : ''
}

/** The token form: a clt_ token kept in sessionStorage under `key`; `onSet` runs once one is set (and at start if one is). */
export function tokenForm(key: string, onSet: () => void = () => {}): void {
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault()
    const t = ($('token') as HTMLInputElement).value.trim()
    if (!/^clt_[A-Za-z0-9_-]{43}$/.test(t)) return say('A token is clt_ followed by 43 characters.', true)
    sessionStorage.setItem(key, t)
    ;($('token') as HTMLInputElement).value = ''
    $('token-state').textContent = 'token set for this tab'
    say('')
    onSet()
  })
  if (sessionStorage.getItem(key)) {
    $('token-state').textContent = 'token set for this tab'
    onSet()
  }
}
