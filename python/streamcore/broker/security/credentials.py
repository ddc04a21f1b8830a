"""SCRAM credentials (RFC 5802, RFC 7677) and the store that keeps them in the data directory.

A credential never holds the password: only the salt, the iteration count and the two
keys the server needs (StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
HMAC(SaltedPassword, "Server Key"), SaltedPassword = PBKDF2-HMAC(password, salt,
iterations)). The primitives are the standard library's :mod:`hmac` and
:func:`hashlib.pbkdf2_hmac`.

:class:`CredentialStore` keeps every user's credentials in
``<data_dir>/scram-credentials.json``, replaced atomically on each change
(``streamcore._atomic_file.write_atomic``) and readable by its owner only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streamcore._atomic_file import write_atomic
from streamcore.errors import StorageError

__all__ = [
    "SCRAM_MECHANISMS",
    "ScramMechanism",
    "ScramCredential",
    "CredentialStore",
    "DEFAULT_ITERATIONS",
    "MAX_ITERATIONS",
    "CREDENTIALS_FILE",
    "mechanism_by_type",
]

#: Kafka's default iteration count (kafka-configs) and the most AlterUserScramCredentials accepts.
DEFAULT_ITERATIONS = 4096
MAX_ITERATIONS = 16384
#: Bytes of a salt made here (Kafka's ScramFormatter uses a random string of this order).
SALT_BYTES = 32
#: The file in the data directory.
CREDENTIALS_FILE = "scram-credentials.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ScramMechanism:
    """A SCRAM mechanism: its SASL name, hash and Kafka's numeric type (ScramMechanism.type)."""

    name: str
    hash_name: str
    type: int
    min_iterations: int = 4096

    @property
    def digest_size(self) -> int:
        return hashlib.new(self.hash_name).digest_size

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hash_name).digest()

    def salted_password(self, password: bytes, salt: bytes, iterations: int) -> bytes:
        """Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC."""
        return hashlib.pbkdf2_hmac(self.hash_name, password, salt, iterations)


#: The SCRAM mechanisms, by SASL name.
SCRAM_MECHANISMS: dict[str, ScramMechanism] = {
    "SCRAM-SHA-256": ScramMechanism("SCRAM-SHA-256", "sha256", 1),
    "SCRAM-SHA-512": ScramMechanism("SCRAM-SHA-512", "sha512", 2),
}


def mechanism_by_type(type_: int) -> ScramMechanism | None:
    """The mechanism of Kafka's numeric type (1 SHA-256, 2 SHA-512), None for others."""
    return next((m for m in SCRAM_MECHANISMS.values() if m.type == type_), None)


@dataclass(frozen=True)
class ScramCredential:
    """What the server keeps of one user's password for one mechanism."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def from_salted_password(
        cls, mechanism: ScramMechanism, salt: bytes, salted_password: bytes, iterations: int
    ) -> ScramCredential:
        """From SaltedPassword (what AlterUserScramCredentials carries)."""
        client_key = mechanism.hmac(salted_password, b"Client Key")
        return cls(
            salt=salt,
            stored_key=mechanism.hash(client_key),
            server_key=mechanism.hmac(salted_password, b"Server Key"),
            iterations=iterations,
        )

    @classmethod
    def from_password(
        cls,
        mechanism: ScramMechanism,
        password: str,
        *,
        salt: bytes | None = None,
        iterations: int = DEFAULT_ITERATIONS,
    ) -> ScramCredential:
        """From a password (UTF-8, as Kafka encodes it); a random salt unless one is given."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        salted = mechanism.salted_password(password.encode("utf-8"), salt, iterations)
        return cls.from_salted_password(mechanism, salt, salted, iterations)

    def to_json(self) -> dict[str, object]:
        b64 = base64.b64encode
        return {
            "salt": b64(self.salt).decode(),
            "iterations": self.iterations,
            "stored_key": b64(self.stored_key).decode(),
            "server_key": b64(self.server_key).decode(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ScramCredential:
        def raw(field: str) -> bytes:
            value = data[field]
            if not isinstance(value, str):
                raise ValueError(f"{field} is not a string")
            return base64.b64decode(value, validate=True)

        iterations = data["iterations"]
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError("iterations is not a positive integer")
        return cls(raw("salt"), raw("stored_key"), raw("server_key"), iterations)


#: user -> mechanism name -> credential
Credentials = dict[str, dict[str, ScramCredential]]


class CredentialStore:
    """Every user's SCRAM credentials, kept in ``<directory>/scram-credentials.json``.

    Read once when opened; each :meth:`apply` writes the whole file atomically before the
    change is visible, so a failed write changes nothing. The broker holds the data
    directory lock while it has the store open; ``streamcore users --data-dir`` takes the
    same lock, so two writers never race.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / CREDENTIALS_FILE
        self._users: Credentials = self._load()

    def _load(self) -> Credentials:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot be read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
                raise ValueError(f"not a version {_FORMAT_VERSION} credentials file")
            users: Credentials = {}
            for user, mechanisms in data["users"].items():
                users[user] = {}
                for name, cred in mechanisms.items():
                    if name not in SCRAM_MECHANISMS:
                        raise ValueError(f"unknown mechanism {name!r} of user {user!r}")
                    users[user][name] = ScramCredential.from_json(cred)
            return users
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise StorageError(
                f"{self.path}: not a valid SCRAM credentials file ({exc}); restore it from a backup or "
                "delete it and add the users again"
            ) from None

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        """The credential of ``user`` for ``mechanism`` (a SASL name), None when there is none."""
        return self._users.get(user, {}).get(mechanism)

    def users(self) -> dict[str, dict[str, ScramCredential]]:
        """A copy: user -> mechanism name -> credential."""
        return {user: dict(mechs) for user, mechs in self._users.items()}

    def apply(
        self,
        deletions: Iterable[tuple[str, str]] = (),
        upsertions: Iterable[tuple[str, str, ScramCredential]] = (),
    ) -> None:
        """Delete (user, mechanism) pairs and set (user, mechanism, credential) ones, then
        persist. Raises OSError (nothing changed) when the file cannot be written."""
        users = self.users()
        for user, mechanism in deletions:
            mechs = users.get(user, {})
            mechs.pop(mechanism, None)
            if not mechs:
                users.pop(user, None)
        for user, mechanism, credential in upsertions:
            users.setdefault(user, {})[mechanism] = credential
        payload = {
            "version": _FORMAT_VERSION,
            "users": {
                user: {name: cred.to_json() for name, cred in sorted(mechs.items())}
                for user, mechs in sorted(users.items())
            },
        }
        write_atomic(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
        # The keys let whoever reads them pose as the broker to clients, or guess passwords
        # offline: owner only (write_atomic creates files readable by everyone).
        os.chmod(self.path, 0o600)
        self._users = users
