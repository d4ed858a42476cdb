"""Help where people work: each role's guide from docs/ served in the app in the user's language, linked from
the navigation and from the pages it describes (the section describing each page), rendered safely.

The Chinese guides (docs/zh/) are kept in step with the English ones: the same headings in the same order
(each Chinese heading takes the id of the English one at its place), and no untranslated English outside code
(commands, codes and identifiers in code spans and blocks; a few abbreviations of file formats and standards).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote, unquote

import pytest
from markdown_it import MarkdownIt

from tests.factories import drive, make_bank
from tests.web.support import login, set_passwords
from workflow.web import help as guides

# Latin words allowed in Chinese prose: file formats, standards, units and product names that Chinese banking
# documents write this way (and the UI's own "API 读取", "导出 Excel").
ABBREVIATIONS = {"PDF", "PNG", "JPEG", "DOCX", "XLSX", "CSV", "ZIP", "JSON", "API", "UTC", "MB", "kB", "B",
                 "Excel", "English", "N", "n", "l", "c", "C", "R", "S", "L", "F", "V", "A", "M"}
# "English" is the language button's own label; single letters stand for numbers in the guides' messages.


class _Text(HTMLParser):
    """The text of a rendered page outside <code>/<pre>, and every link and id."""

    def __init__(self):
        super().__init__()
        self.depth, self.text, self.hrefs, self.ids = 0, [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("code", "pre"):
            self.depth += 1
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if attrs.get("id"):
            self.ids.add(attrs["id"])

    def handle_endtag(self, tag):
        if tag in ("code", "pre"):
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 0:
            self.text.append(data)


def _parse(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


def _article(page: str) -> str:
    start = page.index(">", page.index('class="card guide"')) + 1
    return page[start:page.index("</article>", start) if "</article>" in page[start:] else page.index("</section>", start)]


@pytest.fixture
def world(sqlite_engine, app_for):
    """Cases in the states whose pages are described, and signed-in staff of every role (Chinese UI)."""
    bank = make_bank(sqlite_engine, n_loans=2, loans_per_enterprise=1)
    set_passwords(bank.engine)
    app = app_for(bank.engine)
    cases = {"under_review": drive(bank, "under_review", loan_ids=bank.loans[:1]),
             "registered": drive(bank, "registered", loan_ids=bank.loans[1:])}
    clients = {}
    for name in ("officer", "investigator", "member1", "chair", "appeal", "auditor", "admin"):
        clients[name] = app.test_client()
        assert login(clients[name], name).status_code == 302
    return bank, app, cases, clients


def _english(client):
    client.post("/language", data={"csrf_token": client.csrf, "locale": "en", "next": "/inbox"})


@pytest.mark.parametrize("name", list(guides.GUIDES))
def test_the_chinese_guide_keeps_the_english_headings_in_order(name):
    md = MarkdownIt("commonmark").enable("table")
    file = guides.GUIDES[name].file
    tags = {lang: [t.tag for t in md.parse(guides.source_path(file, lang).read_text(encoding="utf-8"))
                   if t.type == "heading_open"] for lang in ("en", "zh")}
    assert tags["zh"] == tags["en"], f"docs/zh/{file} is out of step with docs/{file}"


def test_every_guide_page_is_served_in_chinese_without_untranslated_english_and_its_links_work(world):
    _bank, _app, _cases, clients = world
    client = clients["admin"]
    index = client.get("/help/").get_data(as_text=True)
    assert 'id="getting-around-everyone"' in index and "通用操作" in index
    pages = {"/help/": index}
    for name in guides.GUIDES:
        response = client.get(f"/help/{name}")
        assert response.status_code == 200
        pages[f"/help/{name}"] = response.get_data(as_text=True)
    for url, page in pages.items():
        body = _parse(_article(page))
        words = re.findall(r"[A-Za-z][A-Za-z'’-]*", "".join(body.text))
        stray = sorted({w for w in words if w not in ABBREVIATIONS})
        assert stray == [], f"{url}: English outside code: {stray}"
        for href in body.hrefs:  # every link between guides leads to a served page and an existing section
            if href.startswith("http"):
                continue
            path, _, fragment = href.partition("#")
            fragment = unquote(fragment)  # markdown-it percent-encodes it; browsers match the decoded id
            target = pages.get(path or url)
            assert target is not None, f"{url}: link to {href} is not a help page"
            if fragment:
                assert f'id="{fragment}"' in target, f"{url}: link to {href}: no such section"
    assert f"/help/committee#{quote('dashboard-仪表盘')}" in pages["/help/appeal-reviewer"]  # written in the docs


def test_the_english_interface_shows_the_english_guide(world):
    _bank, _app, _cases, clients = world
    client = clients["member1"]
    _english(client)
    page = client.get("/help/committee").get_data(as_text=True)
    assert "Guide for the review committee" in page and 'id="voting-投票"' in page
    assert "评议委员会使用指南" not in page
    index = client.get("/help/").get_data(as_text=True)
    assert "Getting around (everyone)" in index and 'your role' in index


def _page_help(page: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" id="page-help"', page)
    return unquote(match.group(1)) if match else None


def test_the_pages_link_the_section_of_the_guide_that_describes_them(world):
    _bank, app, cases, clients = world
    review, registered = cases["under_review"], cases["registered"]
    expected = [
        ("officer", f"/cases/{registered}", "/help/credit-officer#file-your-exemption-statement-提交免责陈述"),
        ("officer", f"/cases/{registered}/statement", "/help/credit-officer#file-your-exemption-statement-提交免责陈述"),
        ("investigator", f"/cases/{registered}", "/help/investigator#assigning-the-investigator-指派调查人"),
        ("member1", f"/cases/{review}", "/help/committee#voting-投票"),
        ("member1", f"/cases/{review}/vote", "/help/committee#voting-投票"),
        ("chair", f"/cases/{review}/determine", "/help/committee#determining-签发认定--the-chair"),
        ("auditor", f"/cases/{review}", "/help/auditor#reading"),
        ("auditor", "/audit/", "/help/auditor#exports-内部审计--导出记录"),
        ("auditor", "/audit/access-log", "/help/auditor#access-log-访问日志"),
        ("admin", "/admin/", "/help/admin"),
        ("admin", "/admin/users", "/help/admin#users-and-roles-用户与角色"),
        ("admin", "/admin/calendar", "/help/admin#holiday-calendar-节假日日历"),
        ("admin", "/admin/documents/", "/help/admin#form-of-the-documents-文书格式"),
    ]
    for name, url, target in expected:
        page = clients[name].get(url)
        assert page.status_code == 200, (name, url, page.status_code)
        html = page.get_data(as_text=True)
        assert 'id="nav-help"' in html
        assert _page_help(html) == target, (name, url)
    # every section named for a page or a case exists, in both languages
    for guide, section in [*guides.PAGE_HELP.values(), *[(guides.PART_GUIDE[part], s) for (part, _), s in
                                                          guides.CASE_HELP.items()]]:
        for lang in ("zh", "en"):
            with app.test_request_context():  # the guides' links are made with url_for
                assert section is None or section in guides.render_guide(guide, lang).ids, (guide, section, lang)


def test_the_appeal_pages_link_the_appeal_reviewers_guide(sqlite_engine, app_for):
    bank = make_bank(sqlite_engine)
    set_passwords(bank.engine)
    case_id = drive(bank, "appeal_review")
    client = app_for(bank.engine).test_client()
    login(client, "appeal")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert _page_help(page) == "/help/appeal-reviewer#voting-on-an-appeal-申诉复核表决"
    appeal = re.search(rf'/cases/{case_id}/appeals/(\d+)/vote', page).group(1)
    vote = client.get(f"/cases/{case_id}/appeals/{appeal}/vote").get_data(as_text=True)
    assert _page_help(vote) == "/help/appeal-reviewer#voting-on-an-appeal-申诉复核表决"


def test_raw_html_in_a_guide_is_shown_as_text_and_links_to_unserved_files_are_plain_text():
    md = guides._md
    html = md.render('<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[x](javascript:alert(1))')
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert guides.slug("Signing the decision (签发申诉复核决定) — the chair") == \
        "signing-the-decision-签发申诉复核决定--the-chair"


def test_an_unknown_guide_is_not_found(world):
    assert world[3]["officer"].get("/help/nonsense").status_code == 404
