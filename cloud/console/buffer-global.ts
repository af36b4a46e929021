// Injected into the browser bundle (bundle.ts): `Buffer` for the few places shared/ uses it.
export { Buffer } from 'buffer'
