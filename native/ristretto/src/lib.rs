//! careledger-ristretto: the curve25519 operations of the chameleon hash and of the batch checks
//! (shared/crypto/chameleon-batch.ts, ed25519-batch.ts; docs/crypto.md §The native ristretto255 addon), done by
//! curve25519-dalek 4.1.3, behind a hand-written N-API binding (no napi-rs: a few `napi_*`
//! functions declared below, resolved by Node when it loads the addon).
//!
//! Public inputs only (encodings, scalars and weights the verifier already holds), so the
//! variable-time multi-scalar multiplication is safe. Inputs are flat Uint8Arrays: n points are
//! one buffer of n×32 bytes, so a call crosses N-API once whatever n is.
//!
//! - `decodeCheck(points)`: the index of the first of the n×32-byte encodings that RFC 9496 §4.3.1
//!   refuses (non-canonical field element, negative s, non-square, negative or zero t), or -1.
//! - `batchHolds(Y, points, weights, a, b)`: does Σ z_i·P_i = a·Y + b·G hold, with every P_i and Y
//!   decoded as RFC 9496 §4.3.1 says, z_i the 16-byte little-endian weights and a, b canonical
//!   32-byte little-endian scalars (< ℓ)? False when any of them fails to decode or parse.
//!
//! - `hashPoint(Y, e, s)`: encode(e·Y + s·G), the point a chameleon Hash converts (chameleon.ts
//!   hashPoint), through fixed-base tables: G's precomputed one and, for Y, one built at the first
//!   call under that key and kept per thread (the cloud hashes every record under one key). An
//!   empty Uint8Array when Y does not decode or e, s are not canonical scalars.
//!
//! - `ed25519BatchHolds(A, R, S, hram, weights)`: for n Ed25519 signatures (RFC 8032), does the
//!   cofactored batch equation [8]·(Σ z_i·R_i + Σ (z_i·k_i)·A_i − (Σ z_i·S_i)·B) = 0 hold, with
//!   k_i = hram_i mod ℓ (hram_i the 64-byte SHA-512(R_i ‖ A_i ‖ M_i) the caller computed), every
//!   R_i and A_i a canonical encoding of a curve point, and every S_i canonical (< ℓ)? False when
//!   any of them is not. The weights z_i (16 bytes each) are the caller's, from the OS CSPRNG;
//!   signatures under one key share one point of the multiplication. docs/crypto.md §Ed25519
//!   batches gives the argument (cofactored equation: a "true" implies each signature passes the
//!   strict single check of @noble/curves, except with probability ≤ 2^-128).
//!
//! The JavaScript side takes a `true` as proof and re-judges every `false` with @noble/curves.

use std::cell::RefCell;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;

use std::collections::HashMap;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

// ---- the N-API functions used (node_api.h, N-API version 1) ------------------------------------

type NapiEnv = *mut c_void;
type NapiValue = *mut c_void;
type NapiCallbackInfo = *mut c_void;
type NapiStatus = i32;
type NapiCallback = unsafe extern "C" fn(NapiEnv, NapiCallbackInfo) -> NapiValue;

const NAPI_OK: NapiStatus = 0;
const NAPI_UINT8_ARRAY: i32 = 1;

extern "C" {
    fn napi_get_cb_info(env: NapiEnv, info: NapiCallbackInfo, argc: *mut usize, argv: *mut NapiValue, this_arg: *mut NapiValue, data: *mut *mut c_void) -> NapiStatus;
    fn napi_is_typedarray(env: NapiEnv, value: NapiValue, result: *mut bool) -> NapiStatus;
    fn napi_get_typedarray_info(env: NapiEnv, value: NapiValue, kind: *mut i32, length: *mut usize, data: *mut *mut c_void, arraybuffer: *mut NapiValue, byte_offset: *mut usize) -> NapiStatus;
    fn napi_get_boolean(env: NapiEnv, value: bool, result: *mut NapiValue) -> NapiStatus;
    fn napi_create_int32(env: NapiEnv, value: i32, result: *mut NapiValue) -> NapiStatus;
    fn napi_create_function(env: NapiEnv, name: *const c_char, length: usize, cb: NapiCallback, data: *mut c_void, result: *mut NapiValue) -> NapiStatus;
    fn napi_set_named_property(env: NapiEnv, object: NapiValue, name: *const c_char, value: NapiValue) -> NapiStatus;
    fn napi_throw_type_error(env: NapiEnv, code: *const c_char, msg: *const c_char) -> NapiStatus;
    fn napi_throw_range_error(env: NapiEnv, code: *const c_char, msg: *const c_char) -> NapiStatus;
    fn napi_create_buffer_copy(env: NapiEnv, length: usize, data: *const c_void, result_data: *mut *mut c_void, result: *mut NapiValue) -> NapiStatus;
}

const CODE: *const c_char = b"INVALID_ARGUMENT\0".as_ptr() as *const c_char;

/// The call's arguments, exactly `N` of them.
unsafe fn args<const N: usize>(env: NapiEnv, info: NapiCallbackInfo) -> Option<[NapiValue; N]> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    if napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != NAPI_OK || argc < N {
        napi_throw_type_error(env, CODE, b"careledger-ristretto: too few arguments\0".as_ptr() as *const c_char);
        return None;
    }
    Some(argv)
}

/// The bytes of a Uint8Array (or Buffer) argument, borrowed for the call; a TypeError otherwise.
unsafe fn bytes<'a>(env: NapiEnv, value: NapiValue) -> Option<&'a [u8]> {
    let mut is = false;
    let (mut kind, mut len, mut data) = (0i32, 0usize, ptr::null_mut());
    if napi_is_typedarray(env, value, &mut is) != NAPI_OK
        || !is
        || napi_get_typedarray_info(env, value, &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut()) != NAPI_OK
        || kind != NAPI_UINT8_ARRAY
    {
        napi_throw_type_error(env, CODE, b"careledger-ristretto: expected a Uint8Array\0".as_ptr() as *const c_char);
        return None;
    }
    Some(if len == 0 || data.is_null() { &[] } else { std::slice::from_raw_parts(data as *const u8, len) })
}

/// The first N arguments, each a Uint8Array's bytes (a TypeError thrown otherwise, and None).
unsafe fn byte_args<'a, const N: usize>(env: NapiEnv, info: NapiCallbackInfo) -> Option<[&'a [u8]; N]> {
    let argv = args::<N>(env, info)?;
    let mut v: [&[u8]; N] = [&[]; N];
    for (slot, value) in v.iter_mut().zip(argv) {
        *slot = bytes(env, value)?;
    }
    Some(v)
}

unsafe fn range_error(env: NapiEnv, msg: &'static [u8]) -> NapiValue {
    napi_throw_range_error(env, CODE, msg.as_ptr() as *const c_char);
    ptr::null_mut()
}

unsafe fn boolean(env: NapiEnv, value: bool) -> NapiValue {
    let mut out = ptr::null_mut();
    napi_get_boolean(env, value, &mut out);
    out
}

// ---- the operations ---------------------------------------------------------------------------

/// RFC 9496 §4.3.1 decode (curve25519-dalek's `decompress` refuses exactly what it refuses).
fn decode(encoding: &[u8]) -> Option<RistrettoPoint> {
    CompressedRistretto::from_slice(encoding).ok()?.decompress()
}

/// The index of the first 32-byte encoding that does not decode, or None.
fn first_undecodable(points: &[u8]) -> Option<usize> {
    points.chunks_exact(32).position(|p| decode(p).is_none())
}

/// Σ z_i·P_i − a·Y − b·G = 0, as one multi-scalar multiplication (Pippenger above ~190 points).
fn batch_holds(y: &[u8], points: &[u8], weights: &[u8], a: &[u8], b: &[u8]) -> bool {
    let (Some(y), Some(a), Some(b)) = (decode(y), canonical_scalar(a), canonical_scalar(b)) else { return false };
    let mut ps: Vec<RistrettoPoint> = Vec::with_capacity(points.len() / 32 + 2);
    for p in points.chunks_exact(32) {
        match decode(p) {
            Some(p) => ps.push(p),
            None => return false,
        }
    }
    let mut zs: Vec<Scalar> = weights.chunks_exact(16).map(weight).collect();
    ps.push(y);
    zs.push(-a);
    ps.push(RISTRETTO_BASEPOINT_POINT);
    zs.push(-b);
    RistrettoPoint::vartime_multiscalar_mul(zs.iter(), ps.iter()).is_identity()
}

thread_local! {
    /// The fixed-base table of the last key hashed under on this thread (~30 KB, ~0.1 ms to build).
    static Y_TABLE: RefCell<Option<([u8; 32], RistrettoBasepointTable)>> = const { RefCell::new(None) };
}

/// encode(e·Y + s·G) through fixed-base tables (constant time, though e, s and Y are public here).
fn hash_point(y: &[u8], e: &[u8], s: &[u8]) -> Option<[u8; 32]> {
    let (e, s) = (canonical_scalar(e)?, canonical_scalar(s)?);
    let key: [u8; 32] = y.try_into().ok()?;
    let ey = Y_TABLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(k, _)| k != &key).unwrap_or(true) {
            *slot = Some((key, RistrettoBasepointTable::create(&decode(y)?)));
        }
        slot.as_ref().map(|(_, table)| table * &e)
    })?;
    Some((ey + &s * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes())
}

/// RFC 8032 §5.1.3 decoding, strictly: the point, if `bytes` is its canonical encoding — y < p
/// (step 1), and not x = 0 with the sign bit set (step 4: the points y = 1 and y = p − 1).
/// curve25519-dalek's `decompress` reduces a non-canonical y and ignores the sign of x = 0, so both
/// are checked on the bytes first (cheaper than re-encoding, which costs an inversion).
fn edwards_point(bytes: &[u8]) -> Option<EdwardsPoint> {
    let bytes: &[u8; 32] = bytes.try_into().ok()?;
    let (low, high) = (bytes[0], bytes[31] & 0x7f);
    let middle_ff = bytes[1..31].iter().all(|&b| b == 0xff);
    let middle_00 = bytes[1..31].iter().all(|&b| b == 0);
    if high == 0x7f && middle_ff && low >= 0xed {
        return None; // y ≥ p = 2^255 − 19
    }
    let x_is_zero = (low == 1 && high == 0 && middle_00) || (low == 0xec && high == 0x7f && middle_ff);
    if x_is_zero && bytes[31] & 0x80 != 0 {
        return None; // "x = 0 and x_0 = 1: decoding fails"
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// 16 little-endian bytes as a scalar (< 2^128 < ℓ: unchanged).
fn weight(w: &[u8]) -> Scalar {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(w);
    Scalar::from_bytes_mod_order(bytes)
}

/// [8]·(Σ z_i·R_i + Σ (z_i·k_i)·A_i − (Σ z_i·S_i)·B) = 0, one multi-scalar multiplication.
fn ed25519_batch_holds(keys: &[u8], rs: &[u8], ss: &[u8], hrams: &[u8], weights: &[u8]) -> bool {
    let n = rs.len() / 32;
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(n + 8);
    let mut scalars: Vec<Scalar> = Vec::with_capacity(n + 8);
    let mut b = Scalar::ZERO;
    // Each distinct key once: its coefficient Σ z_i·k_i over the signatures under it.
    let mut key_slot: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    let mut key_scalars: Vec<Scalar> = Vec::new();
    for i in 0..n {
        let (a, r, s, hram, w) = (&keys[32 * i..32 * i + 32], &rs[32 * i..32 * i + 32], &ss[32 * i..32 * i + 32], &hrams[64 * i..64 * i + 64], &weights[16 * i..16 * i + 16]);
        let (Some(r), Some(s)) = (edwards_point(r), canonical_scalar(s)) else { return false };
        let hram: &[u8; 64] = hram.try_into().expect("64 bytes");
        let k = Scalar::from_bytes_mod_order_wide(hram);
        let z = weight(w);
        let a: [u8; 32] = a.try_into().expect("32 bytes");
        let slot = match key_slot.get(&a) {
            Some(&slot) => slot,
            None => {
                let Some(point) = edwards_point(&a) else { return false };
                key_points.push(point);
                key_scalars.push(Scalar::ZERO);
                key_slot.insert(a, key_points.len() - 1);
                key_points.len() - 1
            }
        };
        key_scalars[slot] += z * k;
        b += z * s;
        points.push(r);
        scalars.push(z);
    }
    points.extend(key_points);
    scalars.extend(key_scalars);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.push(-b);
    EdwardsPoint::vartime_multiscalar_mul(scalars.iter(), points.iter()).mul_by_cofactor().is_identity()
}

fn canonical_scalar(bytes: &[u8]) -> Option<Scalar> {
    let bytes: [u8; 32] = bytes.try_into().ok()?;
    Option::from(Scalar::from_canonical_bytes(bytes))
}

// ---- the exported functions -------------------------------------------------------------------

unsafe extern "C" fn js_decode_check(env: NapiEnv, info: NapiCallbackInfo) -> NapiValue {
    let Some([points]) = args::<1>(env, info) else { return ptr::null_mut() };
    let Some(points) = bytes(env, points) else { return ptr::null_mut() };
    if points.len() % 32 != 0 {
        return range_error(env, b"careledger-ristretto: decodeCheck takes n*32 bytes\0");
    }
    let index = match first_undecodable(points) {
        Some(i) => i32::try_from(i).unwrap_or(i32::MAX),
        None => -1,
    };
    let mut out = ptr::null_mut();
    napi_create_int32(env, index, &mut out);
    out
}

unsafe extern "C" fn js_batch_holds(env: NapiEnv, info: NapiCallbackInfo) -> NapiValue {
    let Some([y, points, weights, a, b]) = byte_args::<5>(env, info) else { return ptr::null_mut() };
    if y.len() != 32 || a.len() != 32 || b.len() != 32 || points.len() % 32 != 0 || weights.len() != points.len() / 2 {
        return range_error(env, b"careledger-ristretto: batchHolds takes Y (32 bytes), n*32 bytes of points, n*16 of weights, a and b (32 bytes)\0");
    }
    boolean(env, batch_holds(y, points, weights, a, b))
}

unsafe extern "C" fn js_hash_point(env: NapiEnv, info: NapiCallbackInfo) -> NapiValue {
    let Some([y, e, s]) = byte_args::<3>(env, info) else { return ptr::null_mut() };
    if y.len() != 32 || e.len() != 32 || s.len() != 32 {
        return range_error(env, b"careledger-ristretto: hashPoint takes Y, e and s (32 bytes each)\0");
    }
    let point = hash_point(y, e, s);
    let out_bytes: &[u8] = match &point {
        Some(p) => p,
        None => &[],
    };
    let mut out = ptr::null_mut();
    napi_create_buffer_copy(env, out_bytes.len(), out_bytes.as_ptr() as *const c_void, ptr::null_mut(), &mut out);
    out
}

unsafe extern "C" fn js_ed25519_batch_holds(env: NapiEnv, info: NapiCallbackInfo) -> NapiValue {
    let Some([keys, rs, ss, hrams, weights]) = byte_args::<5>(env, info) else { return ptr::null_mut() };
    let n = rs.len() / 32;
    if rs.len() % 32 != 0 || keys.len() != 32 * n || ss.len() != 32 * n || hrams.len() != 64 * n || weights.len() != 16 * n {
        return range_error(env, b"careledger-ristretto: ed25519BatchHolds takes n*32 bytes of keys, of R and of S, n*64 of SHA-512(R||A||M) and n*16 of weights\0");
    }
    boolean(env, ed25519_batch_holds(keys, rs, ss, hrams, weights))
}

/// Node's entry point for an N-API addon (what NAPI_MODULE_INIT defines).
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: NapiEnv, exports: NapiValue) -> NapiValue {
    let functions: [(&[u8], NapiCallback); 4] = [
        (b"decodeCheck\0", js_decode_check),
        (b"batchHolds\0", js_batch_holds),
        (b"hashPoint\0", js_hash_point),
        (b"ed25519BatchHolds\0", js_ed25519_batch_holds),
    ];
    for (name, cb) in functions {
        let mut f = ptr::null_mut();
        let name = name.as_ptr() as *const c_char;
        if napi_create_function(env, name, usize::MAX /* NAPI_AUTO_LENGTH */, cb, ptr::null_mut(), &mut f) != NAPI_OK
            || napi_set_named_property(env, exports, name, f) != NAPI_OK
        {
            return ptr::null_mut();
        }
    }
    exports
}
