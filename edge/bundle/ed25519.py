"""Ed25519 signature verification (RFC 8032, section 5.1.7) in pure Python, for the device.

The device only verifies (DESIGN.md: keys are made and bundles signed in ``export/``); one manifest per bundle
load. This module needs nothing beyond the interpreter: no ``cryptography`` (+11 MiB resident, measured), no
child process, no libsodium. A verification takes a few milliseconds (Python integers; ``bench`` figures in
``tests/test_ed25519.py``'s docstring are measured there). Tested against RFC 8032's test vectors and against
``cryptography`` (OpenSSL) on random keys, messages and forgeries.

The check is the cofactorless one OpenSSL and libsodium make: ``[S]B - [k]A`` must encode to exactly the
signature's ``R``; ``S`` must be below the group order ``L``; ``A`` must be a canonical point encoding.
Not constant-time: verification handles only public data.
"""

from __future__ import annotations

import importlib

__all__ = ["verify"]

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _sha512_constructor():  # noqa: ANN202
    """The interpreter's built-in sha512 (hashlib's loads OpenSSL's libcrypto: +3.6 MiB resident)."""
    for name in ("_sha2", "_sha512"):  # Python >= 3.12, 3.10-3.11
        try:
            return importlib.import_module(name).sha512
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha512


_sha512 = _sha512_constructor()

# Points in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z (RFC 8032, 5.1.4).
_IDENTITY = (0, 1, 1, 0)


def _add(p: tuple, q: tuple) -> tuple:
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = b - a, dd - c, dd + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p: tuple) -> tuple:
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _decode(s: bytes) -> tuple | None:
    """A point from its 32-byte encoding, or None if it is not a canonical encoding of a curve point."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx == (-u) % P:
        x = x * SQRT_M1 % P
    elif vxx != u:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _encode(p: tuple) -> bytes:
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_G_Y = 4 * pow(5, P - 2, P) % P
BASE = _decode(_G_Y.to_bytes(32, "little"))


def _double_scalar_mult(s: int, p: tuple, k: int, q: tuple) -> tuple:
    """``[s]P + [k]Q`` (Straus: one pass of doublings)."""
    pq = _add(p, q)
    r = _IDENTITY
    for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        r = _double(r)
        bits = ((s >> i) & 1, (k >> i) & 1)
        if bits == (1, 1):
            r = _add(r, pq)
        elif bits[0]:
            r = _add(r, p)
        elif bits[1]:
            r = _add(r, q)
    return r


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` (64 bytes) is a valid Ed25519 signature of ``message`` by ``public_key`` (32 bytes)."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decode(public_key)
    if a is None:
        return False
    r_bytes, s = signature[:32], int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(_sha512(r_bytes + public_key + message).digest(), "little") % L
    minus_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return _encode(_double_scalar_mult(s, BASE, k, minus_a)) == r_bytes
