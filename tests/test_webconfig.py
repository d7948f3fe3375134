"""--web.config.file (issue 20, point 4): /metrics over HTTPS, behind client certificates or basic auth.

The exporter runs as a process against the fake ARM; the certificates are made here, at test time: a CA,
a server certificate for 127.0.0.1, a client certificate of that CA and one of another CA.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.simulator.fakearm import FakeArm, FakeEstate, FakeVault
from exporter.webconfig import BasicAuth, WebConfigError, load_web_config, parse_basic_authorization

from .conftest import SUB_A
from .e2e_stack import free_port

PASSWORD = "s3cret scrape"
COST = 10  # htpasswd -nBC 10: exporter-toolkit's example, ~50-100 ms a check


# --- a PKI made at test time ------------------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pem(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@dataclass
class Pki:
    ca: Path
    server: Path  # server.key beside it
    client: Path
    stranger: Path  # a client certificate of another CA

    def issue_server(self, directory: Path, name: str) -> Path:
        """Another server certificate of the same CA, as a renewal would write it."""
        ca_key = serialization.load_pem_private_key(self.ca.with_suffix(".key").read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        return _write_pem(directory / f"{name}.crt", _certificate(name, key, _name("test-ca"), ca_key, server=True),
                          key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, _name("test-ca"), ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    other_ca = _certificate("other-ca", other_key, _name("other-ca"), other_key, ca=True)
    return Pki(ca=_write_pem(directory / "ca.crt", ca, ca_key),
               server=_write_pem(directory / "server.crt",
                                 _certificate("exporter", server_key, ca.subject, ca_key, server=True), server_key),
               client=_write_pem(directory / "client.crt",
                                 _certificate("prometheus", client_key, ca.subject, ca_key), client_key),
               stranger=_write_pem(directory / "stranger.crt",
                                   _certificate("prometheus", client_key, other_ca.subject, other_key), client_key))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=COST)).decode().replace("$2b$", "$2y$", 1)


# --- the exporter as a process ------------------------------------------------------------------------------

@pytest.fixture
def vault(estate: FakeEstate) -> FakeVault:
    return estate.add_vault(SUB_A, "rg-prod", "vault-prod")


def _env(arm: FakeArm, vault: FakeVault, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    return {**base, "IDENTITY_ENDPOINT": arm.identity_endpoint, "IDENTITY_HEADER": arm.identity_header,
            "AZURE_BACKUP_EXPORTER_RESOURCE_MANAGER_URL": arm.url, "AZURE_BACKUP_EXPORTER_VAULTS": vault.id, **extra}


@contextlib.contextmanager
def _exporter(arm: FakeArm, vault: FakeVault, web_config: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}",
                             "--web.config.file", str(web_config)],
                            env=_env(arm, vault), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.communicate()


def _web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tls_and_users(tmp_path: Path, pki: Pki, password_hash: str) -> Path:
    # Relative names: exporter-toolkit reads them from the web config file's own directory.
    for cert in (pki.server, pki.ca):
        (tmp_path / cert.name).write_bytes(cert.read_bytes())
        (tmp_path / cert.with_suffix(".key").name).write_bytes(cert.with_suffix(".key").read_bytes())
    return _web_config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                 f"basic_auth_users:\n  prometheus: {password_hash}\n")


# --- HTTPS and basic auth -----------------------------------------------------------------------------------

def test_https_scrape_with_the_right_password(arm: FakeArm, vault: FakeVault, pki: Pki, tls_and_users: Path) -> None:
    with _exporter(arm, vault, tls_and_users) as url:
        first = requests.get(f"{url}/metrics", auth=("prometheus", PASSWORD), verify=pki.ca, timeout=30)
        assert first.status_code == 200, first.text
        assert 'azure_backup_vault_scrape_success{resource_group="rg-prod"' in first.text
        # Remembered after the first bcrypt check: the next scrapes are not slowed by it.
        second = requests.get(f"{url}/metrics", auth=("prometheus", PASSWORD), verify=pki.ca, timeout=30)
        assert second.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):  # the server's certificate is not the system's
            requests.get(f"{url}/-/healthy", timeout=10)
        plain = url.replace("https://", "http://")
        with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
            requests.get(f"{plain}/metrics", auth=("prometheus", PASSWORD), timeout=10)


@pytest.mark.parametrize("auth", [None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("prometheus", "x" * 100)],
                         ids=["no-password", "wrong-password", "unknown-user", "over-72-bytes"])
def test_no_or_wrong_password_gets_401_and_no_metrics(arm: FakeArm, vault: FakeVault, pki: Pki,
                                                      tls_and_users: Path, auth: tuple[str, str] | None) -> None:
    with _exporter(arm, vault, tls_and_users) as url:
        for path in ("/metrics", "/", "/nope"):
            response = requests.get(f"{url}{path}", auth=auth, verify=pki.ca, timeout=30)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Basic "), response.headers
            assert "azure_backup" not in response.text and "vault-prod" not in response.text
        # The probes' paths stay open: they say only OK / Ready.
        assert requests.get(f"{url}/-/healthy", verify=pki.ca, timeout=10).text == "OK\n"
        assert requests.get(f"{url}/-/ready", verify=pki.ca, timeout=10).status_code in (200, 503)


# --- client certificates ------------------------------------------------------------------------------------

@pytest.fixture
def client_certificates(tmp_path: Path, pki: Pki) -> Path:
    return _web_config(tmp_path, f"tls_server_config:\n  cert_file: {pki.server}\n"
                                 f"  key_file: {pki.server.with_suffix('.key')}\n  client_ca_file: {pki.ca}\n"
                                 "  client_auth_type: RequireAndVerifyClientCert\n")


def _pair(cert: Path) -> tuple[str, str]:
    return str(cert), str(cert.with_suffix(".key"))


def test_a_required_client_certificate(arm: FakeArm, vault: FakeVault, pki: Pki, client_certificates: Path) -> None:
    with _exporter(arm, vault, client_certificates) as url:
        good = requests.get(f"{url}/metrics", cert=_pair(pki.client), verify=pki.ca, timeout=30)
        assert good.status_code == 200 and "azure_backup_up" in good.text
        for cert in (None, _pair(pki.stranger)):  # none, or one of another CA: refused in the handshake
            with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
                requests.get(f"{url}/metrics", cert=cert, verify=pki.ca, timeout=30)
        # The exporter serves on after refusing them.
        assert requests.get(f"{url}/-/healthy", cert=_pair(pki.client), verify=pki.ca, timeout=10).text == "OK\n"


def test_a_renewed_certificate_is_served_without_a_restart(arm: FakeArm, vault: FakeVault, pki: Pki,
                                                            tmp_path: Path) -> None:
    cert = pki.issue_server(tmp_path, "first")
    config = _web_config(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {cert.with_suffix('.key')}\n")
    with _exporter(arm, vault, config) as url:
        port = int(url.rsplit(":", 1)[1])
        assert _served_subject(port) == "first"
        (tmp_path / "renewal").mkdir()
        renewed = pki.issue_server(tmp_path / "renewal", "second")  # as cert-manager writes it: new files in place
        cert.write_bytes(renewed.read_bytes())
        cert.with_suffix(".key").write_bytes(renewed.with_suffix(".key").read_bytes())
        assert _served_subject(port) == "second"


def _served_subject(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    subject = x509.load_pem_x509_certificate(pem.encode()).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# --- a bad web config stops the start -------------------------------------------------------------------------

BAD_CONFIGS = {
    "missing-file": (None, "not found"),
    "bad-yaml": ("tls_server_config: [cert_file: a\n", "not YAML"),
    "unknown-key": ("basic_auth_user:\n  prometheus: x\n",
                    "unknown key 'basic_auth_user' (did you mean 'basic_auth_users'?)"),
    "unknown-tls-key": ("tls_server_config:\n  cert_fille: a\n",
                        "unknown key 'tls_server_config.cert_fille' (did you mean 'tls_server_config.cert_file'?)"),
    "not-bcrypt": ("basic_auth_users:\n  prometheus: plain-password\n",
                   "basic_auth_users.prometheus: not a bcrypt hash"),
    "unreadable-cert": ("tls_server_config:\n  cert_file: junk.crt\n  key_file: junk.crt\n", "cannot be loaded"),
    "missing-cert": ("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n",
                     "tls_server_config.cert_file"),
    "missing-key-file": ("tls_server_config:\n  cert_file: junk.crt\n", "tls_server_config.key_file is missing"),
    "unverified-client-cert": ("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                               "  client_auth_type: RequireAnyClientCert\n", "without verifying it"),
    "ca-without-policy": ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                          "client_ca_file is set but client_auth_type is NoClientCert"),
    "policy-without-ca": ("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                          "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
    "unsupported-part": ("http_server_config:\n  http2: false\n", "does not support it"),
}


@pytest.mark.parametrize(("text", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_bad_web_config_stops_the_start_with_one_line(arm: FakeArm, vault: FakeVault, tmp_path: Path,  # noqa: PLR0917
                                                        text: str | None, problem: str, how: str) -> None:
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    path = tmp_path / "web.yml" if text is None else _web_config(tmp_path, text)
    args, env = ([f"--web.config.file={path}"], {}) if how == "flag" else (
        [], {"AZURE_BACKUP_EXPORTER_WEB_CONFIG_FILE": str(path)})
    result = subprocess.run([sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{free_port()}",
                             *args], env=_env(arm, vault, **env), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"azure-backup-exporter: web config file {path}: ") and problem in lines[0], lines[0]
    assert "plain-password" not in lines[0]  # a password written in clear by mistake is not echoed


def test_check_config_validates_the_web_config(arm: FakeArm, vault: FakeVault, tmp_path: Path) -> None:
    config = _web_config(tmp_path, "basic_auth_users:\n  prometheus: nope\n")
    result = subprocess.run([sys.executable, "-m", "exporter", "--check-config", "--web.config.file", str(config)],
                            env=_env(arm, vault), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "not a bcrypt hash" in result.stderr


def test_an_empty_web_config_serves_plain_http(tmp_path: Path) -> None:
    assert load_web_config(_web_config(tmp_path, "")).tls is None
    with pytest.raises(WebConfigError, match="should be a mapping"):
        load_web_config(_web_config(tmp_path, "- a list\n"))


# --- the password check itself ------------------------------------------------------------------------------

def _basic(user: str, password: str) -> str:
    import base64  # noqa: PLC0415

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _seconds(auth: BasicAuth, header: str) -> tuple[bool, float]:
    start = time.perf_counter()
    allowed = auth.allows(header)
    return allowed, time.perf_counter() - start


def test_an_unknown_user_costs_a_bcrypt_check_too(password_hash: str) -> None:
    """No user-name oracle: a wrong name takes as long as a wrong password (a decoy hash of the same cost)."""
    auth = BasicAuth({"prometheus": password_hash.encode()})
    known = min(_seconds(auth, _basic("prometheus", "wrong"))[1] for _ in range(3))
    unknown = min(_seconds(auth, _basic("mallory", "wrong"))[1] for _ in range(3))
    assert known > 0.005, "a cost-10 bcrypt check takes tens of milliseconds"
    assert unknown > known / 3, (known, unknown)


def test_only_a_success_is_remembered(password_hash: str) -> None:
    auth = BasicAuth({"prometheus": password_hash.encode()})
    allowed, first = _seconds(auth, _basic("prometheus", PASSWORD))
    assert allowed
    allowed, again = _seconds(auth, _basic("prometheus", PASSWORD))
    assert allowed and again < first / 5, (first, again)
    # A failure is checked every time: the memory of a success is no shortcut for a near miss.
    for _ in range(2):
        allowed, wrong = _seconds(auth, _basic("prometheus", PASSWORD + "!"))
        assert not allowed and wrong > first / 3, (first, wrong)


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic !!!", "Basic " + "cHJvbWV0aGV1cw==", "Basic"])
def test_malformed_authorization_headers_are_refused(header: str | None, password_hash: str) -> None:
    assert parse_basic_authorization(header) is None
    assert not BasicAuth({"prometheus": password_hash.encode()}).allows(header)


# --- the documentation's examples -------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_example_is_a_web_config_this_exporter_accepts(tmp_path: Path, pki: Pki) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("### Securing /metrics")[1].split("```yaml\n")[1].split("```")[0]
    files = {"tls.crt": pki.server, "tls.key": pki.server.with_suffix(".key"), "client-ca.crt": pki.ca}
    for name, source in files.items():
        (tmp_path / name).write_bytes(source.read_bytes())
    config = load_web_config(_web_config(tmp_path, example))
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert BasicAuth(config.users).allows(_basic("prometheus", "change-me"))


def test_the_kubernetes_example_sets_the_setting_the_exporter_reads() -> None:
    from exporter.settings import env_name  # noqa: PLC0415

    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = doc.split("### HTTPS and basic auth on Kubernetes")[1].split("\n### ")[0]
    deployment, monitor = yaml.safe_load_all(section.split("```yaml\n")[1].split("```")[0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (env,) = container["env"]
    assert env["name"] == env_name("web_config_file")
    assert env["value"].startswith(container["volumeMounts"][0]["mountPath"] + "/")
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics", "scheme": "HTTPS"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["scheme"] == "https" and endpoint["basicAuth"] and endpoint["tlsConfig"]["ca"]
    shipped = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "servicemonitor.yaml").read_text(encoding="utf-8"))
    # The patch replaces the endpoints list whole: it must keep what the shipped one sets.
    for key, value in shipped["spec"]["endpoints"][0].items():
        assert endpoint[key] == value, key
