"""--web.config.file: TLS and basic authentication of the HTTP server, in exporter-toolkit's format.

The file is the one every Prometheus exporter reads (node_exporter's `--web.config.file`):

    tls_server_config:
      cert_file: server.crt          # relative paths are read from the file's own directory
      key_file: server.key
      client_ca_file: clients-ca.crt # with client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven
      client_auth_type: RequireAndVerifyClientCert
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes, e.g. htpasswd -nBC 10 "" | tr -d ':\\n'

It is read and checked once at start: a problem is one `WebConfigError` line (exit code 2). The certificate
and key are read again when their files change (cert-manager renews them in place), on the next connection.
Parts of exporter-toolkit's format this exporter does not do (inline PEM, cipher and curve lists,
client_allowed_sans, http_server_config, rate_limit) are refused by name rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import hmac
import logging
import re
import secrets
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

log = logging.getLogger("exporter.web")

# exporter-toolkit's client_auth_type values (Go's tls.ClientAuthType) -> what Python's ssl does with them.
# Go can ask for a certificate and not verify it (RequestClientCert, RequireAnyClientCert); OpenSSL through
# Python's ssl verifies whatever it asks for, so those two are refused instead of being served differently.
CLIENT_AUTH_MODES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
TOP_KEYS = ("tls_server_config", "basic_auth_users")
# In exporter-toolkit's format, but not done here: refused by name, so nobody believes them in force.
UNSUPPORTED_KEYS = {
    "tls_server_config": ("cert", "key", "client_ca", "client_allowed_sans", "cipher_suites",
                          "curve_preferences", "prefer_server_cipher_suites"),
    "": ("http_server_config", "rate_limit"),
}
# $2a$/$2b$/$2y$, a two-digit cost, 22 characters of salt and 31 of hash (bcrypt's own base64 alphabet).
BCRYPT_HASH = re.compile(rb"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
BCRYPT_MAX_PASSWORD = 72  # bytes: bcrypt reads no further, and the bcrypt package refuses longer ones
HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to finish the TLS handshake
AUTH_CACHE_SIZE = 64  # successful (user, password) pairs remembered; only valid credentials get in


class WebConfigError(Exception):
    """The web config file is unusable; the message is one line that names the problem."""


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    client_auth_type: str
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion

    def paths(self) -> list[Path]:
        return [path for path in (self.cert_file, self.key_file, self.client_ca_file) if path is not None]


@dataclass(frozen=True)
class WebConfig:
    tls: TlsFiles | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user name -> bcrypt hash


# --- reading the file ---------------------------------------------------------------------------------

def load_web_config(path: Path) -> WebConfig:
    """Read and check the file, its certificates included; raises WebConfigError with one line."""
    where = f"web config file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WebConfigError(f"{where}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{where}: cannot be read: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{where}: not YAML: {' '.join(str(exc).split())}") from None
    try:
        config = _parse(document, path.parent)
        if config.tls is not None:
            build_tls_context(config.tls)  # a certificate that cannot be served stops the start, not a scrape
    except WebConfigError as exc:
        raise WebConfigError(f"{where}: {exc}") from None
    return config


def _parse(document: Any, directory: Path) -> WebConfig:
    if document is None:
        return WebConfig()  # an empty file: plain HTTP, no authentication (as exporter-toolkit)
    top = _mapping(document, "the file")
    _check_keys(top, TOP_KEYS, UNSUPPORTED_KEYS[""], "")
    tls = top.get("tls_server_config")
    users = top.get("basic_auth_users")
    return WebConfig(tls=None if tls is None else _tls_files(_mapping(tls, "tls_server_config"), directory),
                     users={} if users is None else _users(_mapping(users, "basic_auth_users")))


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise WebConfigError(f"{what} should be a mapping of names")
    return value


def _check_keys(found: Mapping[str, Any], known: tuple[str, ...], unsupported: tuple[str, ...], section: str) -> None:
    prefix = f"{section}." if section else ""
    for key in found:
        if key in unsupported:
            raise WebConfigError(f"{prefix}{key} is part of exporter-toolkit's format, but this exporter does not "
                                 f"support it (supported: {', '.join(prefix + k for k in known)})")
        if key not in known:
            closest = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {prefix + closest[0]!r}?" if closest else f"known: {', '.join(known)}"
            raise WebConfigError(f"unknown key {prefix + key!r} ({hint})")


def _tls_files(tls: dict[str, Any], directory: Path) -> TlsFiles:
    _check_keys(tls, TLS_KEYS, UNSUPPORTED_KEYS["tls_server_config"], "tls_server_config")
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise WebConfigError(f"tls_server_config.{key} is missing")
    auth = str(tls.get("client_auth_type") or "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type {auth} asks for a client certificate without verifying it, "
            "which Python's ssl module cannot do; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) "
            "with client_ca_file")
    if auth not in CLIENT_AUTH_MODES:
        raise WebConfigError(f"tls_server_config.client_auth_type {auth!r} is not one of "
                             f"{', '.join([*CLIENT_AUTH_MODES, *UNVERIFIED_CLIENT_AUTH])}")
    client_ca = tls.get("client_ca_file")
    if client_ca and auth == "NoClientCert":
        # exporter-toolkit refuses it too: a CA that verifies nobody looks like protection and is none.
        raise WebConfigError("tls_server_config.client_ca_file is set but client_auth_type is NoClientCert "
                             "(use RequireAndVerifyClientCert to require client certificates)")
    if not client_ca and auth != "NoClientCert":
        raise WebConfigError(f"tls_server_config.client_auth_type {auth} needs client_ca_file, the CA that "
                             "signs the client certificates")
    return TlsFiles(cert_file=directory / str(tls["cert_file"]), key_file=directory / str(tls["key_file"]),
                    client_ca_file=directory / str(client_ca) if client_ca else None, client_auth_type=auth,
                    min_version=_tls_version(tls, "min_version", "TLS12"),
                    max_version=_tls_version(tls, "max_version", "TLS13"))


def _tls_version(tls: Mapping[str, Any], key: str, default: str) -> ssl.TLSVersion:
    name = str(tls.get(key) or default)
    if name not in TLS_VERSIONS:
        raise WebConfigError(f"tls_server_config.{key} {name!r} is not one of {', '.join(TLS_VERSIONS)}")
    return TLS_VERSIONS[name]


def _users(users: dict[str, Any]) -> dict[str, bytes]:
    checked = {}
    for name, hashed in users.items():
        if not name or ":" in name:
            raise WebConfigError(f"basic_auth_users: {name!r} cannot be a user name (empty, or has a ':')")
        # Never echo the value: it is a hash of a password, or worse, a password written in clear.
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed.encode()):
            raise WebConfigError(f"basic_auth_users.{name}: not a bcrypt hash (make one with: "
                                 "htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        checked[name] = hashed.encode()
    return checked


# --- TLS ----------------------------------------------------------------------------------------------

def build_tls_context(tls: TlsFiles) -> ssl.SSLContext:
    """The server's SSLContext; raises WebConfigError naming the file that cannot be used."""
    for key, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file),
                      ("client_ca_file", tls.client_ca_file)):
        if path is not None and not path.is_file():
            raise WebConfigError(f"tls_server_config.{key} {path}: not found")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"tls_server_config.cert_file {tls.cert_file} and key_file {tls.key_file}: "
                             f"cannot be loaded as a certificate and its key ({_reason(exc)})") from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"tls_server_config.client_ca_file {tls.client_ca_file}: "
                                 f"not a PEM certificate ({_reason(exc)})") from None
    context.verify_mode = CLIENT_AUTH_MODES[tls.client_auth_type]
    return context


def _reason(exc: OSError) -> str:
    """OpenSSL's short reason (PEM_LIB, KEY_VALUES_MISMATCH) or the OS's, not the whole tuple."""
    reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
    return " ".join(str(reason or exc).split())


class ServerTls:
    """Wraps accepted connections; loads the certificate files again when they change on disk."""

    def __init__(self, tls: TlsFiles) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._context = build_tls_context(tls)

    def _file_stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self.tls.paths():
            try:
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append((-1, -1))
        return tuple(stamps)

    def context(self) -> ssl.SSLContext:
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                try:
                    self._context = build_tls_context(self.tls)
                    log.info("reloaded the TLS certificate of the web server (%s)", self.tls.cert_file)
                except WebConfigError as exc:
                    # Half-written files during a renewal: keep serving the last good certificate.
                    log.error("cannot reload the web server's certificate, serving the previous one: %s", exc)
                self._stamp = stamp
            return self._context

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        # The handshake happens in the request's thread (see server.py), so a slow client never blocks accept().
        return self.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


# --- basic authentication -------------------------------------------------------------------------------

class BasicAuth:
    """Checks `Authorization: Basic` against basic_auth_users' bcrypt hashes.

    - No user-name oracle: an unknown user's password is checked against a decoy hash of the users' highest
      cost, so a wrong name takes as long as a wrong password.
    - bcrypt takes ~100-300 ms on purpose, too slow for every scrape: a successful (user, password) is
      remembered, keyed by an HMAC under a key made at start, so the memory never holds a password or an
      unsalted hash of one. Only successes are kept, so a caller without credentials cannot fill it or use it.
    - One bcrypt at a time, as exporter-toolkit does: a flood of wrong passwords costs one core, not all.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = {name.encode(): hashed for name, hashed in users.items()}
        cost = max(int(hashed[4:6]) for hashed in self._users.values())
        self._decoy = bcrypt.hashpw(secrets.token_urlsafe(16).encode(), bcrypt.gensalt(rounds=cost))
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def allows(self, authorization: str | None) -> bool:
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        stored = self._users.get(user)
        key = hmac.digest(self._key, len(user).to_bytes(4, "big") + user + password, hashlib.sha256)
        if stored is not None and self._recall(key):
            return True
        matches = self._checkpw(password, stored if stored is not None else self._decoy)
        if matches and stored is not None:
            self._remember(key)
            return True
        return False

    def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        if len(password) > BCRYPT_MAX_PASSWORD:
            return False  # the same answer for every user, at once: no oracle either
        with self._bcrypt_lock:
            try:
                return bool(bcrypt.checkpw(password, hashed))
            except ValueError:
                return False

    def _recall(self, key: bytes) -> bool:
        with self._cache_lock:
            if key in self._remembered:
                self._remembered.move_to_end(key)
                return True
            return False

    def _remember(self, key: bytes) -> None:
        with self._cache_lock:
            self._remembered[key] = None
            while len(self._remembered) > AUTH_CACHE_SIZE:
                self._remembered.popitem(last=False)


def parse_basic_authorization(header: str | None) -> tuple[bytes, bytes] | None:
    """`Basic base64(user:password)` -> (user, password) as bytes; None for anything else."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None
