"""Help where people work: the role guides of docs/ served in the app, in the user's language.

The English guides in docs/ are the source; docs/zh/ holds their Chinese versions, kept in step (the same
headings in the same order: a Chinese heading takes the id of the English one at its place, so a section's
address is the same in both languages and the links between guides and from the pages work in either).
Markdown is rendered with markdown-it-py (CommonMark and tables) with raw HTML off: any HTML in a guide is
shown as text, never run. Links between guides lead to their pages here; links to files the app does not
serve (technical documents, the repository's README) are shown as plain text.

`PAGE_HELP` names the guide section that describes each page (by endpoint, or by blueprint), and
`CASE_HELP` the section of the case page for the part the viewer plays in the case (policy.part_in_case)
and the case's state. The navigation links /help; the header links the current page's section.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, g, render_template, request, url_for
from flask_login import current_user, login_required
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..config import ROOT
from ..domain import policy
from .common import not_found
from .i18n import _l, is_zh

bp = Blueprint("help", __name__, url_prefix="/help")

DOCS = ROOT / "docs"
ZH = "zh"  # docs/zh/: the Chinese versions


@dataclass(frozen=True)
class Guide:
    name: str  # its address: /help/<name>
    file: str  # under docs/ (the English source) and docs/zh/ (the Chinese version)
    roles: tuple[str, ...]  # whose guide it is
    label: object  # who it is for, in the UI language


GUIDES = {gd.name: gd for gd in (
    Guide("credit-officer", "guide-credit-officer.md", ("credit_officer",), _l("Credit officers (respondents)")),
    Guide("investigator", "guide-investigator.md", ("investigator",), _l("Investigators")),
    Guide("committee", "guide-committee.md", ("committee_member", "committee_chair"),
          _l("Review committee: members and chairs")),
    Guide("appeal-reviewer", "guide-appeal-reviewer.md", ("appeal_reviewer", "appeal_chair"),
          _l("Appeal committee")),
    Guide("auditor", "guide-auditor.md", ("auditor",), _l("Internal auditors")),
    Guide("admin", "admin-guide.md", ("admin",), _l("Administrators")),
)}
# The documentation index's part for everyone (sign-in, language, the case page, error pages): /help itself.
INDEX_FILE = "README.md"
INDEX_SECTION = "getting-around-everyone"
_BY_FILE = {gd.file: gd.name for gd in GUIDES.values()}

# The guide of each part one plays in a case (policy.CASE_PARTS).
PART_GUIDE = {"respondent": "credit-officer", "investigator": "investigator", "committee": "committee",
              "appeal_reviewer": "appeal-reviewer", "auditor": "auditor", "admin": "admin"}

# (part in the case, state) -> the section of that part's guide for the case page; (part, None): any state.
CASE_HELP: dict[tuple[str, str | None], str] = {
    ("respondent", "registered"): "file-your-exemption-statement-提交免责陈述",
    ("respondent", "investigating"): "file-your-exemption-statement-提交免责陈述",
    ("respondent", "under_review"): "the-recommendation-and-its-explanation",
    ("respondent", "determined"): "download-your-letters-文书",
    ("respondent", "in_publicity"): "acknowledge-your-letter-签收",
    ("respondent", "appeal_window"): "appeal-within-your-window-提出申诉",
    ("respondent", None): "your-cases",
    ("investigator", "registered"): "assigning-the-investigator-指派调查人",
    ("investigator", "investigating"): "what-you-record-facts-per-respondent-loan-and-stage",
    ("investigator", None): "after-submission",
    ("committee", "registered"): "registering-a-case-立案登记--chairs-and-administrators",
    ("committee", "investigating"): "the-one-year-limit-and-督办-urging-a-step",
    ("committee", "under_review"): "voting-投票",
    ("committee", "determined"): "documents-service-publicity-and-objections--chair-or-administrator",
    ("committee", "in_publicity"): "documents-service-publicity-and-objections--chair-or-administrator",
    ("committee", "final"): "after-the-determination-is-final--chair-or-administrator",
    ("committee", None): "your-inbox",
    ("appeal_reviewer", "appeal_review"): "voting-on-an-appeal-申诉复核表决",
    ("appeal_reviewer", None): "when-appeals-reach-you",
    ("auditor", None): "reading",
    ("admin", None): "scheduled-jobs",
}

# endpoint (or blueprint) -> (guide, section or None) of the pages a guide describes, other than the case page.
PAGE_HELP: dict[str, tuple[str, str | None]] = {
    "cases.statement": ("credit-officer", "file-your-exemption-statement-提交免责陈述"),
    "cases.appeal": ("credit-officer", "appeal-within-your-window-提出申诉"),
    "cases.waive_appeal": ("credit-officer", "waive-your-appeal-放弃申诉"),
    "cases.evidence": ("investigator", "evidence-上传证据"),
    "cases.facts": ("investigator", "what-you-record-facts-per-respondent-loan-and-stage"),
    "cases.assign": ("investigator", "assigning-the-investigator-指派调查人"),
    "cases.new": ("committee", "registering-a-case-立案登记--chairs-and-administrators"),
    "cases.vote": ("committee", "voting-投票"),
    "cases.determine": ("committee", "determining-签发认定--the-chair"),
    "cases.urge": ("committee", "the-one-year-limit-and-督办-urging-a-step"),
    "cases.case_comments": ("committee", "comments-and-previews"),
    "cases.reason_step": ("committee", "re-judging-under-another-rule-set-version-按其他规则集版本重新评议"),
    "cases.appeal_vote": ("appeal-reviewer", "voting-on-an-appeal-申诉复核表决"),
    "cases.decide_appeal": ("appeal-reviewer", "signing-the-decision-签发申诉复核决定--the-chair"),
    "intake": ("committee", "registering-a-case-立案登记--chairs-and-administrators"),
    "jobs": ("committee", "documents-service-publicity-and-objections--chair-or-administrator"),
    "auth.stand_in_list": ("committee", "stand-ins-代理--members-and-chairs-who-are-away"),
    "dashboard.consistency_page": ("auditor", "consistency-across-branches-各分行认定一致性"),
    "dashboard": ("committee", "dashboard-仪表盘"),
    "guidance": ("committee", "precedents-案例引导--chairs-and-head-office-administrators"),
    "whatif": ("credit-officer", "what-if-模拟评估"),
    "audit.access_log_list": ("auditor", "access-log-访问日志"),
    "audit.bundle_download": ("auditor", "evidence-bundle-证据包"),
    "audit": ("auditor", "exports-内部审计--导出记录"),
    "admin.branches": ("admin", "branches-机构管理"),
    "admin.users": ("admin", "users-and-roles-用户与角色"),
    "admin.user": ("admin", "users-and-roles-用户与角色"),
    "admin.rule_sets": ("admin", "rule-set-versions-规则集版本"),
    "admin.rule_set": ("admin", "which-version-judges-what"),
    "admin.rule_set_draft": ("admin", "drafts-草稿-and-publishing-a-new-version-head-office"),
    "admin.calendar": ("admin", "holiday-calendar-节假日日历"),
    "admin.timer": ("admin", "scheduled-jobs"),
    "admin.deliveries": ("admin", "scheduled-jobs"),
    "admin.tolerance_figures": ("admin", "scheduled-jobs"),
    "cases.accountability": ("admin", "sanctions-recorded-back-and-the-hr-list-问责结果与人力资源清单"),
    "hr": ("admin", "sanctions-recorded-back-and-the-hr-list-问责结果与人力资源清单"),
    "admin": ("admin", None),
    "documents": ("admin", "form-of-the-documents-文书格式"),
}

_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def slug(text: str) -> str:
    """A heading's id as GitHub makes it (lower case, punctuation dropped, spaces to hyphens), so that the
    links written between the guides in docs/ work here too."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _heading_text(inline) -> str:
    return "".join(c.content for c in (inline.children or []) if c.type in ("text", "code_inline"))


def _heading_ids(tokens) -> list[str]:
    ids, seen = [], {}
    for i, t in enumerate(tokens):
        if t.type == "heading_open":
            base = slug(_heading_text(tokens[i + 1]))
            n = seen.get(base, 0)
            seen[base] = n + 1
            ids.append(base if n == 0 else f"{base}-{n}")
    return ids


def source_path(file: str, lang: str) -> Path:
    return DOCS / ZH / file if lang == "zh" else DOCS / file


def _target(href: str, doc_dir: str) -> str | None:
    """Where a link of a guide leads in the app: the same href (external, or a section of the same page),
    the help page of another guide, or None (a file the app does not serve: shown as text)."""
    if href.startswith(("http://", "https://", "mailto:", "#")):
        return href
    path, _, fragment = href.partition("#")
    rel = posixpath.normpath(posixpath.join(doc_dir, path))
    if rel.startswith(ZH + "/"):
        rel = rel[len(ZH) + 1:]
    anchor = f"#{fragment}" if fragment else ""
    if rel in _BY_FILE:
        return url_for("help.guide", name=_BY_FILE[rel]) + anchor
    if rel == INDEX_FILE:
        return url_for("help.index") + anchor
    return None


# A Chinese gloss in parentheses after an English term, "Voting (投票)": the Chinese label for readers of the
# repository's English guides, left out of the English help (whose readers see the English interface).
_GLOSS = re.compile(r"\s*[(（](?=[^()（）]*[\u3400-\u9fff])[^()（）A-Za-z`]*[)）]"
                    r"|,\s*[\u3400-\u9fff][^,()（）A-Za-z]*(?=[)）])")  # "(respondents, 被评议人)": its gloss


def _drop_glosses(tokens) -> None:
    for t in tokens:
        if t.type == "inline":
            for c in t.children or []:
                if c.type == "text":
                    c.content = _GLOSS.sub("", c.content)


def _rewrite_links(tokens, doc_dir: str) -> None:
    for t in tokens:
        if t.type != "inline" or not t.children:
            continue
        children, dropped = [], 0
        for c in t.children:
            if c.type == "link_open":
                href = _target(str(c.attrGet("href") or ""), doc_dir)
                if href is None:
                    dropped += 1
                    continue
                c.attrSet("href", href)
                if href.startswith(("http://", "https://")):
                    c.attrSet("rel", "noopener noreferrer")
            elif c.type == "link_close" and dropped:
                dropped -= 1
                continue
            elif c.type == "image":  # no images from elsewhere: their words only
                c.type, c.tag, c.content, c.children = "text", "", c.content or "", None
            children.append(c)
        t.children = children


@dataclass(frozen=True)
class Page:
    title: str
    html: Markup
    sections: tuple[tuple[str, str], ...]  # (id, text) of the second-level headings
    ids: frozenset[str]  # every heading's id


def _tokens(file: str, lang: str):
    """The guide's tokens in `lang` with every heading's id (the English one at its place) and its links
    made the app's."""
    english = _md.parse(source_path(file, "en").read_text(encoding="utf-8"))
    tokens = english if lang == "en" else _md.parse(source_path(file, lang).read_text(encoding="utf-8"))
    ids = _heading_ids(english)
    own = _heading_ids(tokens)
    n = 0
    for t in tokens:
        if t.type == "heading_open":
            t.attrSet("id", ids[n] if len(own) == len(ids) else own[n])
            n += 1
    _rewrite_links(tokens, ZH if lang == "zh" else "")
    if lang == "en":
        _drop_glosses(tokens)
    return tokens


@lru_cache(maxsize=64)
def _render(file: str, lang: str, section: str | None, _stamp: tuple) -> Page:
    tokens = _tokens(file, lang)
    if section is not None:  # from that heading to the end
        start = next(i for i, t in enumerate(tokens) if t.type == "heading_open" and t.attrGet("id") == section)
        tokens = tokens[start:]
    title, sections, ids = "", [], set()
    for i, t in enumerate(tokens):
        if t.type == "heading_open":
            text = _heading_text(tokens[i + 1])
            ids.add(str(t.attrGet("id")))
            if t.tag == "h1" and not title:
                title = text
            elif t.tag == "h2":
                sections.append((str(t.attrGet("id")), text))
    html = _md.renderer.render(tokens, _md.options, {})
    return Page(title, Markup(html), tuple(sections), frozenset(ids))


def render_guide(name: str, lang: str) -> Page:
    """The guide `name` (GUIDES) rendered in `lang` ("zh" or "en")."""
    file = GUIDES[name].file
    return _render(file, lang, None, _stamp(file, lang))


def render_index(lang: str) -> Page:
    """The documentation index's part for everyone, rendered in `lang`."""
    return _render(INDEX_FILE, lang, INDEX_SECTION, _stamp(INDEX_FILE, lang))


def _stamp(file: str, lang: str) -> tuple:
    """The files' modification times: an edited guide is rendered again."""
    return tuple(p.stat().st_mtime_ns for p in {source_path(file, "en"), source_path(file, lang)})


def _lang() -> str:
    return "zh" if is_zh() else "en"


def own_guides(principal) -> list[str]:
    """The guides of the roles the user holds, in GUIDES' order."""
    return [gd.name for gd in GUIDES.values() if principal.has(*gd.roles)]


def help_url(guide: str, section: str | None = None) -> str:
    """The address of a guide's section (the id percent-encoded, as markdown-it writes the guides' links)."""
    return url_for("help.guide", name=guide) + (f"#{quote(section)}" if section else "")


def for_case(actor: policy.Actor, view: policy.CaseView) -> tuple[str, str | None]:
    """The guide and section describing the case page for the viewer: their part in the case, its state."""
    part = policy.part_in_case(actor, view)
    return PART_GUIDE[part], CASE_HELP.get((part, view.state)) or CASE_HELP.get((part, None))


def set_page_help(guide: str, section: str | None) -> None:
    """The section describing the page being made (a view that knows better than its endpoint, e.g. the case
    page by the viewer's part in the case)."""
    g.mianze_help = (guide, section)


def page_help() -> tuple[str, str | None] | None:
    """The guide and section of the current page: set by its view, else by its endpoint or its blueprint."""
    chosen = g.get("mianze_help")
    if chosen is not None:
        return chosen
    endpoint = request.endpoint or ""
    return PAGE_HELP.get(endpoint) or PAGE_HELP.get(endpoint.partition(".")[0])


def page_help_url() -> str | None:
    target = page_help()
    return help_url(*target) if target else None


@bp.get("/")
@login_required
def index():
    lang = _lang()
    mine = own_guides(current_user)
    guides = [(gd, render_guide(gd.name, lang).title, gd.name in mine) for gd in GUIDES.values()]
    return render_template("help/index.html", guides=guides, page=render_index(lang))


@bp.get("/<name>")
@login_required
def guide(name: str):
    if name not in GUIDES:
        not_found()
    page = render_guide(name, _lang())
    return render_template("help/guide.html", guide=GUIDES[name], page=page, others=[
        (gd, render_guide(gd.name, _lang()).title) for gd in GUIDES.values() if gd.name != name])
