"""`zoomq tls generate`: a self-signed CA and certificates for a test ensemble's TLS ports.

For trying TLS out and for tests, not a PKI: one CA (`ca.pem`, `ca.key`, reused if the directory
has one), and per name a key and a certificate signed by it (`<name>.pem`, `<name>.key`), valid
for both server and client authentication, with the given host names and IP addresses as
subjectAltNames and `CN=<name>` as subject (so a client certificate authenticates as
`x509:CN=<name>`). Keys are EC P-256, written 0600.

It needs the `cryptography` package (`pip install 'zoomq[tls]'`); the node itself only needs
Python's `ssl` to serve TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

CA_NAME = "zoomq test CA"


class TlsGenError(RuntimeError):
    """The certificates cannot be made (missing library, unreadable CA)."""


def _crypto() -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise TlsGenError("`zoomq tls generate` needs the cryptography package: pip install 'zoomq[tls]'") from exc
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key: Any) -> None:
    _, _, serialization, _, _, _ = _crypto()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(pem)


def _ca(directory: Path, days: int) -> tuple[Any, Any]:
    x509, hashes, serialization, ec, _, NameOID = _crypto()
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TlsGenError(f"cannot read the CA in {directory}: {exc}") from exc
        return key, cert
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def generate(directory: Path, names: list[str], hosts: list[str], days: int = 365) -> dict[str, Path]:
    """Make (or reuse) the CA in `directory` and a certificate per name; returns the paths
    ({"ca": ca.pem, name: name.pem, ...}; each key is beside its certificate as .key)."""
    x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _crypto()
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca(directory, days)
    sans: list[Any] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    out = {"ca": directory / "ca.pem"}
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(directory / f"{name}.key", key)
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[name] = directory / f"{name}.pem"
    return out
