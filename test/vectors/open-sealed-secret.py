#!/usr/bin/env python3
"""Open a CareLedger sealed secret (docs/crypto.md §Sealed secrets) without CareLedger: an
independent reading of the format with Python's hashlib (scrypt, HMAC) and `cryptography`
(AES-256-GCM). Usage: open-sealed-secret.py FILE_OR_HEX PASSPHRASE -> prints the secret as hex.
test/crypto/sealed-secret.test.ts runs it on the known-answer vectors when Python has `cryptography`."""
import hashlib, hmac, os, sys, unicodedata
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def leb128(b, off):
    n = shift = 0
    while True:
        byte = b[off]; off += 1
        n |= (byte & 0x7F) << shift; shift += 7
        if not byte & 0x80:
            return n, off

def open_sealed(b, passphrase):
    if b[:2] != b'CL' or b[2] != 1 or b[3] != 11 or b[4] != 1:
        raise ValueError('not a sealed secret, version 1, scheme 1')
    log2n, r, p = b[5], b[6], b[7]
    salt, check, nonce = b[8:24], b[24:56], b[56:68]
    n, off = leb128(b, 68)
    label = b[off:off + n].decode('utf-8'); off += n
    header = b[:off]
    n, off = leb128(b, off)
    body = b[off:off + n]
    if off + n != len(b):
        raise ValueError('trailing bytes')
    kek = hashlib.scrypt(unicodedata.normalize('NFC', passphrase).encode('utf-8'), salt=salt, n=2 ** log2n, r=r, p=p, dklen=32, maxmem=2 ** 31 - 1)
    prk = hmac.new(b'careledger/v1/sealed-secret', kek, 'sha256').digest()  # HKDF-Extract (RFC 5869 §2.2)
    key = hmac.new(prk, b'\x01', 'sha256').digest()  # HKDF-Expand, info = "" (§2.3)
    if not hmac.compare_digest(hmac.new(prk, key + b'\x02', 'sha256').digest(), check):
        raise ValueError('wrong passphrase')
    return label, AESGCM(key).decrypt(nonce, body, header)

if __name__ == '__main__':
    arg = sys.argv[1]
    data = open(arg, 'rb').read() if os.path.exists(arg) else bytes.fromhex(arg)
    label, secret = open_sealed(data, sys.argv[2])
    print(secret.hex())
