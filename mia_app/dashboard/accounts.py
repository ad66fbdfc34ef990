"""Accounts of a hosted dashboard: several users, passwords kept only as salted PBKDF2 hashes.

Two sources, both optional, merged:

- ``MIA_USERS=path``: a users file, one ``user:pbkdf2_sha256$iterations$salt$hash`` line per account, written by
  ``python -m mia_app users add NAME --file path`` (the password is read without echo, never stored in clear);
- ``MIA_AUTH=user:password[,user2:password2]``: quick set-ups and tests; a password cannot contain a comma here
  (use the users file), and a pair without ``:`` is refused rather than read as part of a password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 200_000
_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def check_username(user: str) -> str:
    if not _USER.match(user):
        raise ValueError(f"user name {user!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return user


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$iterations$salt_hex$hash_hex`` (a fresh 16-byte salt unless given)."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations, salt, digest = encoded.split("$")
        if algorithm != ALGORITHM:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:  # a malformed line never lets anyone in
        return False
    return hmac.compare_digest(computed.hex(), digest)


def parse_auth(text: str) -> dict[str, str]:
    """``MIA_AUTH``'s ``user:password[,user:password]`` as {user: hashed password}."""
    accounts: dict[str, str] = {}
    for pair in text.split(","):
        user, sep, password = pair.strip().partition(":")
        if not (user and sep and password):
            raise ValueError("MIA_AUTH must look like user:password or user1:pass1,user2:pass2 (no commas in "
                             "passwords: use a users file, MIA_USERS, for those)")
        if user in accounts:
            raise ValueError(f"MIA_AUTH names user {user!r} twice")
        accounts[check_username(user)] = hash_password(password)
    return accounts


def read_users_file(path: Path) -> dict[str, str]:
    """{user: encoded hash} of a users file; a malformed line is an error naming its number."""
    accounts: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not encoded.startswith(f"{ALGORITHM}$") or encoded.count("$") != 3:
            raise ValueError(f"{path}, line {n}: expected user:{ALGORITHM}$iterations$salt$hash")
        accounts[check_username(user)] = encoded
    return accounts


def add_user(path: Path, user: str, password: str) -> None:
    """Add or replace one account in the users file (created with mode 0600)."""
    accounts = read_users_file(path) if Path(path).is_file() else {}
    accounts[check_username(user)] = hash_password(password)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{u}:{h}\n" for u, h in accounts.items()))
    tmp.replace(path)


#: what an unknown user's password is checked against, so a wrong user name costs the same as a wrong password
_UNKNOWN_USER = hash_password("not a password", b"\0" * 16)


@dataclass
class Accounts:
    """{user: encoded hash}; ``check`` is what Gradio's login calls."""

    hashes: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def check(self, user: str, password: str) -> bool:
        encoded = self.hashes.get(user)
        if encoded is None:
            verify_password(password, _UNKNOWN_USER)  # one PBKDF2 run, as for a known user: timing says nothing
            return False
        return verify_password(password, encoded)
