"""A serving certificate for the sandbox, made on the spot, for RBAC mode with kubectl.

kubectl (client-go) sends a kubeconfig's credentials only over TLS: against
a plain-HTTP server it drops the bearer token, and the RBAC-mode sandbox
answers 401. ``nublado sandbox --rbac`` therefore serves HTTPS with a
certificate made here (a one-day self-signed CA for 127.0.0.1, ::1 and
localhost), and writes that CA into the kubeconfig, as a cluster's
kubeconfig carries its CA. In-process tests keep plain HTTP, where the
Python client sends tokens anyway.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

__all__ = ["ServingCertificate", "serving_certificate"]


@dataclass(frozen=True)
class ServingCertificate:
    """PEM texts: the certificate (also the CA clients trust) and its private key."""

    certificate: bytes
    key: bytes


def serving_certificate(
    hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost"),
) -> ServingCertificate:
    """A new self-signed certificate valid for ``hosts`` (IP addresses or names) for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nublado-sandbox")])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServingCertificate(
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
