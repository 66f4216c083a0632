"""The device's pure-Python Ed25519 verifier (edge.bundle.ed25519) against RFC 8032 and against cryptography.

Cost measured here: about 4 ms per verification (one per bundle load), no child process, nothing resident
beyond the interpreter.
"""

from __future__ import annotations

import os
import time

import pytest

from edge.bundle.ed25519 import L, verify

# RFC 8032, section 7.1: TEST 1, 2, 3 (secret key, public key, message, signature)
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret, public, message, signature):
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert verify(pk, sig, msg)
    assert not verify(pk, sig, msg + b"\0")
    bad = bytearray(sig)
    bad[5] ^= 1
    assert not verify(pk, bytes(bad), msg)
    # S + L encodes the same scalar: non-canonical S is refused (malleability), as RFC 8032 requires
    s = int.from_bytes(sig[32:], "little") + L
    if s < 2**256:
        assert not verify(pk, sig[:32] + s.to_bytes(32, "little"), msg)


def test_rfc8032_vectors_are_what_cryptography_signs():
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization as ser

    for secret, public, message, signature in RFC8032:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
        assert key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex() == public
        assert key.sign(bytes.fromhex(message)).hex() == signature


def test_agrees_with_cryptography_on_random_keys_messages_and_forgeries():
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization as ser

    rng = __import__("random").Random(25)
    for i in range(40):
        key = ed25519.Ed25519PrivateKey.generate()
        pk = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        msg = os.urandom(rng.randrange(0, 3000))
        sig = key.sign(msg)
        cases = [(pk, sig, msg)]
        flipped = bytearray(sig)
        flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
        cases.append((pk, bytes(flipped), msg))
        wrong_key = bytearray(pk)
        wrong_key[rng.randrange(32)] ^= 1 << rng.randrange(8)
        cases.append((bytes(wrong_key), sig, msg))
        cases.append((pk, sig, msg[:-1] if msg else b"x"))
        cases.append((pk, os.urandom(64), msg))
        for p, s, m in cases:
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(p).verify(s, m)
                expected = True
            except (InvalidSignature, ValueError):
                expected = False
            assert verify(p, s, m) is expected, (i, p.hex(), s.hex())


def test_bad_lengths_and_points_are_false_not_errors():
    assert not verify(b"", b"", b"")
    assert not verify(b"\xff" * 32, b"\0" * 64, b"m")  # y >= p: not a canonical point
    assert not verify(bytes(32), b"\0" * 63, b"m")


def test_fast_enough_for_one_manifest_per_load():
    pk, msg, sig = (bytes.fromhex(RFC8032[1][i]) for i in (1, 2, 3))
    t = time.perf_counter()
    for _ in range(5):
        assert verify(pk, sig, msg)
    assert (time.perf_counter() - t) / 5 < 0.25  # about 4 ms on the development machine
