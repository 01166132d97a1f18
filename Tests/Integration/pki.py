"""A throw-away test PKI built with `cryptography`.

One CA (RSA-2048, SHA-256) issues leaves on demand. Every leaf gets a fresh random serial, so
a re-issued certificate for the same name is distinguishable (SIGHUP reload tests).

    pki = TestPKI(tmpdir)
    leaf = pki.issue(["a.test"])                 # ECDSA P-256
    leaf = pki.issue(["a.test"], key_type="rsa")  # RSA-2048
    leaf.cert_pem, leaf.key_pem, leaf.chain_pem, leaf.serial
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Leaf:
    names: list[str]
    key_type: str
    serial: int
    cert_pem: bytes          # the leaf alone
    key_pem: bytes
    ca_pem: bytes

    @property
    def chain_pem(self) -> bytes:
        """Leaf followed by the issuing CA (what a `.crt` full-chain file holds)."""
        return self.cert_pem + self.ca_pem

    @property
    def combined_pem(self) -> bytes:
        """Chain + key in one file (the `NAME.pem` form)."""
        return self.chain_pem + self.key_pem

    def write(self, directory: Path, basename: str, combined: bool = False) -> list[Path]:
        """Write `basename.crt` + `basename.key` (or `basename.pem` when combined)."""
        directory.mkdir(parents=True, exist_ok=True)
        if combined:
            p = directory / f"{basename}.pem"
            _atomic_write(p, self.combined_pem)
            return [p]
        c, k = directory / f"{basename}.crt", directory / f"{basename}.key"
        _atomic_write(c, self.chain_pem)
        _atomic_write(k, self.key_pem)
        return [c, k]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp-write")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TestPKI:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "edgeproxy test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)
        self.ca_path = self.dir / "ca.pem"
        self.ca_path.write_bytes(self.ca_pem)

    def issue(self, names: list[str], key_type: str = "ec", serial: int | None = None,
              days: int = 30, client: bool = False, ocsp_url: str | None = None) -> Leaf:
        """Mint a leaf for `names` (DNS SANs; IP literals become IP SANs) with a new serial; `client`:
        a client certificate (clientAuth) instead of a server one; `ocsp_url` names an OCSP responder
        in its Authority Information Access extension."""
        if key_type == "ec":
            key = ec.generate_private_key(ec.SECP256R1())
        elif key_type == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(key_type)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        serial = serial or x509.random_serial_number()
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                           critical=False)
        )
        if ocsp_url:
            cert = cert.add_extension(x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]),
                critical=False)
        cert = cert.sign(self.ca_key, hashes.SHA256())
        return Leaf(names=list(names), key_type=key_type, serial=serial,
                    cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key),
                    ca_pem=self.ca_pem)


def describe_der(der: bytes) -> dict:
    """What a client saw: serial, DNS SANs, key type ('ec'/'rsa')."""
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    pub = cert.public_key()
    kt = "ec" if isinstance(pub, ec.EllipticCurvePublicKey) else "rsa" if isinstance(pub, rsa.RSAPublicKey) else "?"
    return {"serial": cert.serial_number, "names": names, "key_type": kt}


def describe_pem(pem: bytes) -> dict:
    cert = x509.load_pem_x509_certificate(pem)
    return describe_der(cert.public_bytes(serialization.Encoding.DER))


def crl_pem(pki: TestPKI, revoked: list[int]) -> bytes:
    """A CRL of `pki`'s CA listing these serials as revoked, PEM."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca_cert.subject)
               .last_update(now - datetime.timedelta(minutes=5)).next_update(now + datetime.timedelta(days=1)))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - datetime.timedelta(minutes=1)).build())
    return builder.sign(pki.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

