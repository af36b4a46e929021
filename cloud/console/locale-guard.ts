// Injected first into the browser bundles (bundle.ts). A Chromium started under a POSIX locale
// (LANG=C.UTF-8, as on many servers and CI machines) reports navigator.language as "en-US@posix",
// which is not a BCP 47 tag (RFC 5646); uPlot calls new Intl.NumberFormat(navigator.language) when
// it loads, and the RangeError stopped the doctor view's whole script. Where the browser's tag is
// refused, the page sees the nearest valid one (the part before "@", else en-US).
const usable = (tag: string): boolean => {
  try {
    new Intl.NumberFormat(tag)
    return true
  } catch {
    return false
  }
}
if (typeof navigator !== 'undefined' && typeof Navigator !== 'undefined' && !usable(navigator.language)) {
  const base = String(navigator.language).split('@')[0]!
  const fixed = usable(base) ? base : 'en-US'
  Object.defineProperty(Navigator.prototype, 'language', { get: () => fixed, configurable: true })
}
export {}
