"""Both languages whole, in Chromium, over the demo bank: every page a member of staff can reach by its links,
read in English, has no Chinese characters but names and document numbers, and read in Chinese, no English
words but codes; the dashboard's text boxes never overlap, in either language.

What a page shows as recorded rather than as interface (names, what people wrote: findings, statements,
reasons; the cited sources of the rules) carries the HTML attribute `translate="no"`; commands and file
columns are `<code>`. Those are left out of the reading; everything else is the interface and is checked.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, deque

import pytest
from sqlmodel import Session, select
from werkzeug.serving import make_server

from tests.browser.test_lifecycle import ARTIFACTS, browser  # noqa: F401  (the fixture)
from tests.conftest import demo_copy
from tests.web.support import make_app
from workflow import demo
from workflow.models import Enterprise, User

# Who walks the site, in this order: each reaches the pages of their role by following its links; a kind of
# page (its path with the numbers taken out) is read once, by the first who reaches it. The previews of the
# documents are left out: a document is a Chinese legal text in either language (tests/letters_text.py).
WALKERS = ("officer1", "reviewer1", "investigator1", "member1", "chair1", "appeal1", "auditor1", "admin")
MAX_PAGES = 260

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")
DOCUMENT_NUMBER = re.compile(r"[\u4e00-\u9fff]+〔\d{4}〕\d+号")
# An English word: letters with small letters among them, not part of a code (no digits, underscores,
# hyphens, dots or slashes attached). Capitals alone are acronyms (PDF, CSV, SHA).
ENGLISH_WORD = re.compile(r"(?<![\w\-./@])[A-Za-z][a-z]+(?![\w\-/@])")
NAMES_OF_PRODUCTS = {"Excel", "Lines", "Mianze"}  # Excel, JSON Lines: names of file formats; the product's name
# The case page shows other parts in other states and to other roles: it is read for several cases.
READ_AGAIN = {"/cases/N": 10, "/inbox": 1}
DOWNLOADS = re.compile(r"\.(pdf|xlsx|csv|zip|json|jsonl|txt|png|jpg)(\?|$)|/evidence/\d|/download|/export|/bundle"
                       r"|/logout|/language|/preview/")

READ = """() => {
  const root = document.body.cloneNode(true);
  root.querySelectorAll('[translate="no"], code, script, style, textarea, noscript').forEach(e => e.remove());
  return {title: document.title, text: root.textContent,
          links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))};
}"""

TEXT_BOXES = """(selectors) => {
  const boxes = [];
  for (const el of document.querySelectorAll(selectors)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        if (r.width > 0 && r.height > 0) boxes.push({text: node.textContent.trim(), x: r.left, y: r.top,
                                                     w: r.width, h: r.height});
      }
    }
  }
  const clipped = [...document.querySelectorAll(selectors)].filter(
    el => el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible').map(el => el.id);
  return {boxes, clipped};
}"""
DASHBOARD_TEXT = ("#kpi-tiles, #chart-states, #outcomes-legend, #chart-tolerance, #tolerance table, "
                  "#headline h2, .grid h2, .grid h3, .grid p")


@pytest.fixture
def demo_site(demo_template, tmp_path):
    """The demo bank served on loopback (set up before the browser starts)."""
    engine = demo_copy(demo_template, tmp_path)
    app = make_app(engine, tmp_path)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with Session(engine) as s:
        names = {u.name for u in s.exec(select(User))} | {e.name for e in s.exec(select(Enterprise))}
        usernames = {u.username for u in s.exec(select(User))}
    yield f"http://127.0.0.1:{httpd.server_port}", engine, sorted(names, key=len, reverse=True), usernames
    httpd.shutdown()
    app.extensions["mianze.engine"].dispose()
    engine.dispose()


def _speak(engine, locale: str) -> None:
    with Session(engine) as s:
        for user in s.exec(select(User)):
            user.locale = locale
            s.add(user)
        s.commit()


def _signed_in(browser, base: str, username: str):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", demo.DEMO_PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/inbox")
    return context, page


def _kind(url: str) -> str:
    return re.sub(r"\d+", "N", url.split("?")[0].split("#")[0])


def _walk(browser, base: str, clean):  # noqa: F811
    """Every kind of page once: {who and url: what `clean` found on it (only where it found some)}."""
    found: dict[str, list[str]] = {}
    pages = 0
    seen: set[str] = set()
    read_urls: set[str] = set()
    read_urls_of: Counter = Counter()
    for username in WALKERS:
        context, page = _signed_in(browser, base, username)
        read_urls_of["/inbox"] = 0  # each walker's own inbox, the start of their walk
        read_urls.discard("/inbox")
        queue = deque(["/inbox"])
        while queue and pages < MAX_PAGES:
            url = queue.popleft()
            kind = _kind(url)
            if url in read_urls or (kind in seen and kind not in READ_AGAIN) or read_urls_of[kind] >= READ_AGAIN.get(kind, 1):
                continue
            seen.add(kind)
            read_urls.add(url)
            read_urls_of[kind] += 1
            response = page.goto(base + url)
            pages += 1
            if response is None or response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
                continue
            read = page.evaluate(READ)
            bad = clean(read["title"] + "\n" + read["text"])
            if bad:
                found[f"{username} {url}"] = bad
            for href in read["links"]:
                if href.startswith("/") and not href.startswith("//") and not DOWNLOADS.search(href):
                    if href not in read_urls:
                        queue.append(href)
        context.close()
    assert pages >= 40, pages  # the walk reached the site, not only the inbox
    return found


@pytest.mark.browser
@pytest.mark.xdist_group("demo")
def test_every_page_in_english_has_no_chinese_but_names_and_document_numbers(demo_site, browser):  # noqa: F811
    base, engine, names, _ = demo_site
    _speak(engine, "en")

    def chinese(text: str) -> list[str]:
        for name in names:
            text = text.replace(name, " ")
        return sorted(set(CJK.findall(DOCUMENT_NUMBER.sub(" ", text))))

    assert _walk(browser, base, chinese) == {}


@pytest.mark.browser
@pytest.mark.xdist_group("demo")
def test_every_page_in_chinese_has_no_english_words_but_codes(demo_site, browser):  # noqa: F811
    base, engine, _, usernames = demo_site
    _speak(engine, "zh")
    accounts = [re.compile(r"(?<![\w-])" + re.escape(u) + r"(?![\w-])") for u in sorted(usernames, key=len,
                                                                                          reverse=True)]

    def english(text: str) -> list[str]:
        text = re.sub(r"\S+@\S+|https?://\S+", " ", text)
        for account in accounts:  # a username is a code a person signs in with
            text = account.sub(" ", text)
        return sorted(set(ENGLISH_WORD.findall(text)) - NAMES_OF_PRODUCTS)

    assert _walk(browser, base, english) == {}


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    hits = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > 1 and dy > 1:
                hits.append((a["text"], b["text"]))
    return hits


@pytest.mark.browser
@pytest.mark.xdist_group("demo")
@pytest.mark.parametrize("locale", ["zh", "en"])
def test_the_dashboards_text_never_overlaps_in_either_language(demo_site, browser, locale):  # noqa: F811
    base, engine, _, _ = demo_site
    _speak(engine, locale)
    for username, width in (("admin", 1280), ("chair1", 1280), ("admin", 820)):
        context, page = _signed_in(browser, base, username)
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/dashboard/")
        measured = page.evaluate(TEXT_BOXES, DASHBOARD_TEXT)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)  # kept for people to look at, beside the lifecycle's
        shot = ARTIFACTS / f"dashboard-{locale}-{username}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        context.close()
        assert shot.stat().st_size > 10_000
        assert len(measured["boxes"]) > 40, username  # tiles, bars, legend and the tolerance table were read
        assert _overlaps(measured["boxes"]) == [], (locale, username, width)
        assert measured["clipped"] == [], (locale, username, width)
