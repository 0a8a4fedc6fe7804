"""Key derivation: scrypt for passphrases, HKDF-SHA256 for independent sub-keys."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# scrypt cost for interactive-ish unlocks: N=2^17, r=8, p=1 uses 128 MiB and about half a
# second here, the parameters OWASP's password storage cheat sheet gives as a minimum.
SCRYPT_DEFAULT_LOG2_N = 17
SCRYPT_MIN_LOG2_N = 14  # refuse configs weakened below 16 MiB of work memory
SCRYPT_MAX_LOG2_N = 22  # refuse configs that would need more than 4 GiB to unlock


@dataclass(frozen=True, slots=True, kw_only=True)
class ScryptParams:
    salt: bytes
    log2_n: int = SCRYPT_DEFAULT_LOG2_N
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not SCRYPT_MIN_LOG2_N <= self.log2_n <= SCRYPT_MAX_LOG2_N:
            raise ValueError(
                f"scrypt log2(N) must be in [{SCRYPT_MIN_LOG2_N}, {SCRYPT_MAX_LOG2_N}]"
            )
        if len(self.salt) < 16 or self.r != 8 or self.p != 1:
            raise ValueError("scrypt needs a salt of at least 16 bytes, r=8 and p=1")


def scrypt(passphrase: bytes, params: ScryptParams, length: int = 32) -> bytes:
    """Derive ``length`` bytes from a passphrase with scrypt (RFC 7914)."""
    kdf = Scrypt(salt=params.salt, length=length, n=1 << params.log2_n, r=params.r, p=params.p)
    return kdf.derive(passphrase)


def hkdf_sha256(key: bytes, *, info: bytes, length: int = 32) -> bytes:
    """Derive an independent sub-key for one purpose (RFC 5869, no salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)
