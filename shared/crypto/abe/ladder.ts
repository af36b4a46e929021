/**
 * Exponentiation with a constant sequence of operations, for secret exponents (α in Setup, s0 in
 * Encaps, z in Finish). Every step squares and multiplies by a table entry, also when the digit is
 * zero (the entry is then 1): which operations run, and how many, never depends on the exponent.
 * Operands are generic so that both backends share the schedule and the tests can count it.
 */
export interface MulOps<T> {
  one(): T
  mul(a: T, b: T): T
  sqr(a: T): T
}

/**
 * Π bases[i]^digits[i], every digit < 2^bits (Straus–Shamir, one joint table of 2^k products):
 * (2^k − k − 1) table products, then exactly `bits` squarings and `bits` multiplications.
 */
export function jointPowUniform<T>(ops: MulOps<T>, bases: readonly T[], digits: readonly bigint[], bits: number): T {
  const k = bases.length
  const table: T[] = new Array(1 << k)
  table[0] = ops.one()
  for (let m = 1; m < 1 << k; m++) {
    const low = m & -m
    const i = 31 - Math.clz32(low)
    table[m] = m === low ? bases[i]! : ops.mul(table[m ^ low]!, bases[i]!)
  }
  let acc = ops.one()
  for (let bit = bits - 1; bit >= 0; bit--) {
    acc = ops.sqr(acc)
    const b = BigInt(bit)
    let m = 0
    for (let i = 0; i < k; i++) m |= Number((digits[i]! >> b) & 1n) << i
    acc = ops.mul(acc, table[m]!)
  }
  return acc
}
