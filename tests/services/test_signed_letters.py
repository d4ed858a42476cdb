"""Archival, signed letters: every issued letter is a PDF/A-3b file carrying its data as an attached JSON
file and a PAdES signature of the bank's certificate (in the tests, the demonstration one) that Poppler's
pdfsig validates; the stored hash is that of the signed file, and one changed byte breaks the signature."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess

import pytest
from pypdf import PdfReader
from sqlmodel import Session, select

from tests.factories import drive
from workflow import pdf
from workflow.db import unit_of_work
from workflow.domain.errors import DocumentsUnavailable
from workflow.models import Case, Letter
from workflow.services import letters


def pdfsig(data: bytes, tmp_path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout


def _issued(bank) -> list[Letter]:
    case_id = drive(bank, "determined")
    with unit_of_work(bank.engine) as s:
        letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"))
    with Session(bank.engine) as s:
        return list(s.exec(select(Letter).where(Letter.case_id == case_id).order_by(Letter.id)))


def test_every_issued_letter_is_signed_pdfa3_with_its_data_attached(bank, tmp_path):
    issued = _issued(bank)
    assert sorted(lt.kind for lt in issued) == ["determination"] * 3 + ["investigation_report", "minutes"]
    for letter in issued:
        assert hashlib.sha256(letter.pdf).hexdigest() == letter.sha256  # the hash of the signed file
        report = pdfsig(letter.pdf, tmp_path)
        assert "Signature Validation: Signature is Valid." in report, report
        assert "Total document signed" in report and "Signature Type: ETSI.CAdES.detached" in report, report
        assert "DEMO" in report  # the demonstration certificate says what it is
        reader = PdfReader(io.BytesIO(letter.pdf))
        ident = reader.xmp_metadata.rdf_root.toxml()
        assert re.search(r'pdfaid:part(="|>)3', ident) and re.search(r'pdfaid:conformance(="|>)B', ident), ident
        assert reader.metadata.producer in ident  # the Info dictionary agrees with the XMP, as PDF/A requires
        assert list(reader.attachments) == [pdf.DATA_FILE]
        assert json.loads(reader.attachments[pdf.DATA_FILE][0]) == letter.data


def test_a_letter_changed_by_one_byte_fails_validation(bank, tmp_path):
    letter = _issued(bank)[0]
    changed = bytearray(letter.pdf)
    changed[len(changed) // 3] ^= 0x01  # inside the signed part of the file
    assert hashlib.sha256(changed).hexdigest() != letter.sha256
    report = pdfsig(bytes(changed), tmp_path)
    assert "Signature Validation: Signature is Valid." not in report
    assert "Digest Mismatch" in report, report


def test_a_certificate_that_cannot_be_read_stores_nothing_and_says_so(bank, tmp_path):
    case_id = drive(bank, "determined")
    letters.attach_signer(bank.engine, pdf.LetterSigner(str(tmp_path / "missing.p12")))
    try:
        with pytest.raises(DocumentsUnavailable, match="signing certificate"):
            with unit_of_work(bank.engine) as s:
                letters.issue_determination_letters(s, s.get(Case, case_id), bank.user(s, "chair"))
    finally:
        letters._SIGNERS.pop(bank.engine, None)
    with Session(bank.engine) as s:
        assert not s.exec(select(Letter).where(Letter.case_id == case_id, Letter.kind == "determination")).all()


def test_in_production_the_app_refuses_to_start_without_the_banks_signing_certificate(tmp_path):
    from workflow import create_app
    from workflow.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="LETTER_SIGNING_P12 is not set"):
        create_app({"MIANZE_ENV": "production", "SECRET_KEY": "k" * 64, "LETTER_SIGNING_P12": None,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
