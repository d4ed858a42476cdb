"""Letters signed with the bank's certificate: a PAdES baseline (B-B) signature by pyHanko.

The signer is a PKCS#12 file (the private key, its certificate and the chain up to the bank's CA) named by
the configuration (``LETTER_SIGNING_P12``, ``LETTER_SIGNING_PASSWORD``: docs/deployment.md). The signature is
an invisible signature field added to the PDF/A-3b file by an incremental update, which keeps the file
PDF/A-3b; it covers the whole file but the signature itself, so changing any byte of a stored letter makes
the signature invalid (Poppler's ``pdfsig`` then reports a digest mismatch).

Outside production, and in the tests, a DEMONSTRATION CA and signing certificate made by
``create_demo_certificate`` are used (instance/demo_letter_signing.p12, made by scripts/setup or on first use):
their names say DEMO, and no verifier trusts their CA. A bank replaces them by its own (docs/admin-guide.md).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..config import write_private_once
from .errors import LetterError

DEMO_MARK = "demo"  # a certificate file whose name contains this is the demonstration certificate
FIELD_NAME = "Signature"
_LOCK = threading.Lock()
_LOADED: dict[tuple, object] = {}


class LetterSigningError(LetterError):
    """The signing certificate cannot be read (missing file, wrong passphrase, no private key)."""


@dataclass(frozen=True)
class LetterSigner:
    """Where the signing certificate is: a PKCS#12 file and its passphrase (picklable: rendering processes
    receive it with each letter and load the file once)."""

    pkcs12: str
    passphrase: str | None = None

    @property
    def demo(self) -> bool:
        return DEMO_MARK in Path(self.pkcs12).name.lower()


def _signer(config: LetterSigner):
    """The pyHanko signer of the file, loaded once per process (again when the file changes)."""
    from pyhanko.sign import signers

    path = Path(config.pkcs12)
    try:
        key = (str(path), path.stat().st_mtime_ns, config.passphrase)
    except OSError as exc:
        raise LetterSigningError(f"cannot read the letter signing certificate {path}: {exc}") from exc
    with _LOCK:
        signer = _LOADED.get(key)
        if signer is None:
            passphrase = config.passphrase.encode() if config.passphrase is not None else None
            try:
                signer = signers.SimpleSigner.load_pkcs12(str(path), passphrase=passphrase)
            except (OSError, ValueError) as exc:
                raise LetterSigningError(f"cannot read the letter signing certificate {path}: {exc}") from exc
            if signer is None:  # pyHanko logs the reason and answers None (e.g. a wrong passphrase)
                raise LetterSigningError(f"cannot load the letter signing certificate {path}: wrong passphrase "
                                         "or no private key in it")
            signer = _kept_key(signer)
            _LOADED.clear()
            _LOADED[key] = signer
    return signer


def _kept_key(loaded):
    """The loaded signer, holding its RSA key as a parsed key: pyHanko's SimpleSigner parses (and, in
    cryptography, checks) the private key anew for every signature, twice per letter (the size estimate and
    the signature), which costs more than the rest of the signing."""
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    from pyhanko.sign.general import get_pyca_cryptography_hash
    from pyhanko.sign.signers import SimpleSigner

    class KeptKeySigner(SimpleSigner):
        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
            if mechanism["algorithm"].native in ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa"):
                if isinstance(key, RSAPrivateKey):
                    return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
            return super().sign_raw(data, digest_algorithm)  # other kinds of key: pyHanko's own way

    key = load_der_private_key(loaded.signing_key.dump(), password=None)
    return KeptKeySigner(signing_cert=loaded.signing_cert, signing_key=loaded.signing_key,
                         cert_registry=loaded.cert_registry)


def sign_pdf(pdf: bytes, config: LetterSigner) -> bytes:
    """``pdf`` with a PAdES baseline signature (ETSI.CAdES.detached, SHA-256) of the configured certificate
    added by an incremental update; raises LetterSigningError."""
    from pyhanko.pdf_utils.generic import TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.metadata.model import VENDOR
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    class PdfaWriter(IncrementalPdfFileWriter):
        """pyHanko's incremental writer, keeping the Info dictionary's producer equal to the XMP's (which
        pyHanko sets to its own name only), as PDF/A requires of the two."""

        def _update_meta(self):
            super()._update_meta()
            if self._info is not None and "/Producer" in self._info.get_object():
                self._info.get_object()["/Producer"] = TextStringObject(VENDOR)
                self.mark_update(self._info)

    signer = _signer(config)
    out = io.BytesIO()
    writer = PdfaWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(field_name=FIELD_NAME, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES)
    signers.sign_pdf(writer, meta, signer=signer, output=out)
    return out.getvalue()


def create_demo_certificate(path: Path) -> bool:
    """Write a DEMONSTRATION CA and a letter signing certificate issued by it to ``path`` (PKCS#12 without a
    passphrase, mode 0600), and the CA's certificate next to it (``<name>.ca.pem``), unless ``path`` exists;
    True when they were made. For development, the demo bank and the tests only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    if path.exists():
        return False
    now = datetime.now(UTC).replace(microsecond=0)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DEMO - not a real bank"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def usage(**on) -> x509.KeyUsage:
        flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{f: on.get(f, False) for f in flags})

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = name("Mianze DEMO CA (not for production)")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
          .not_valid_after(now + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(name("Mianze DEMO letter signing (not for production)"))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True, content_commitment=True), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    p12 = pkcs12.serialize_key_and_certificates(b"mianze-demo-letters", key, cert, [ca],
                                                serialization.NoEncryption())
    if not write_private_once(path, p12):  # processes starting together agree on one file
        return False
    path.with_name(path.name + ".ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return True
