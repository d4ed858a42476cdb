"""The evidence bundle's verifier without Python: verify.html from the bundle, opened in Chromium from the
file system (no server, no network), reports OK on an intact bundle and names the file whose byte was
flipped, or the audit event that was edited."""

from __future__ import annotations

import json
import zipfile

import pytest
from sqlmodel import SQLModel

from tests.browser.test_lifecycle import browser  # noqa: F401  (the fixture)
from tests.factories import make_bank
from tests.services.test_bundle import build, flip_one_byte, rewrite
from workflow.db import make_engine, unit_of_work
from workflow.services import rulesets


@pytest.fixture
def bundle_zip(tmp_path):
    """A closed case's bundle (built before the browser starts: signing runs an event loop of its own)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'bundle.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with unit_of_work(engine) as s:
        rulesets.ensure_default(s)
    out, manifest, _ = build(make_bank(engine), tmp_path)
    engine.dispose()
    return out, manifest


def _check(page, path) -> tuple[str, str]:
    page.set_input_files("#bundle", str(path))
    page.wait_for_selector("#status[data-result]", timeout=60_000)
    return page.get_attribute("#status", "data-result"), page.inner_text("body")


@pytest.mark.browser
def test_the_html_verifier_passes_an_intact_bundle_and_names_a_flipped_letter(bundle_zip, browser, tmp_path):  # noqa: F811
    out, manifest = bundle_zip
    with zipfile.ZipFile(out) as zf:
        page_file = tmp_path / "verify.html"
        page_file.write_bytes(zf.read("verify.html"))
    assert any(f["path"] == "verify.html" for f in manifest["files"])  # the page is listed and hashed too
    letter = next(f["path"] for f in manifest["files"] if f["type"] == "letter")
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(page_file.as_uri())
    result, text = _check(page, out)
    assert result == "ok", text
    assert "校验通过" in text and f"{len(manifest['files'])} 个文件" in text

    page.reload()
    result, text = _check(page, rewrite(out, tmp_path / "flipped.zip", {letter: flip_one_byte}))
    assert result == "failed" and f"{letter}：SHA-256" in text and "与清单不符" in text
    assert len(page.locator("#problems li").all_inner_texts()) == 1  # only that file is named

    def edit_event(data: bytes) -> bytes:
        lines = data.decode("utf-8").splitlines()
        ev = json.loads(lines[2])
        ev["actor"] = "someone-else"
        lines[2] = json.dumps(ev, ensure_ascii=False)
        return ("\n".join(lines) + "\n").encode("utf-8")

    page.reload()
    result, text = _check(page, rewrite(out, tmp_path / "edited.zip", {"audit/events.jsonl": edit_event}))
    assert result == "failed" and "审计事件第 3 号" in text and "事件被改动" in text
    context.close()
