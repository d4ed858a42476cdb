"""Language helpers: the user's locale, dates and amounts in it, and labels for codes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, support
from babel import dates as babel_dates
from babel.units import format_unit
from flask import session
from flask_babel import Domain, format_decimal, get_locale, get_timezone
from flask_babel import lazy_gettext as _l  # a text translated when it is used (also pybabel's keyword -k _l)
from flask_login import current_user

from ..domain.states import STATE_LABELS

BABEL_LOCALES = {"zh": "zh_CN", "en": "en"}
DEFAULT_LOCALE = "zh"


# Babel calls Simplified Chinese "zh_Hans_CN"; the catalogue directory is named as pybabel's -l zh_CN.
CATALOG_NAMES = {"zh_Hans_CN": "zh_CN"}


class CatalogDomain(Domain):
    """Flask-Babel's domain, finding the zh_CN catalogue for Babel's zh_Hans_CN locale.

    Babel parses zh_CN as zh_Hans_CN, the name Flask-Babel's own domain looks for; the catalogue's directory
    is named as pybabel's -l zh_CN. Each catalogue is loaded once per process, as Flask-Babel does.
    """

    def get_translations(self):
        locale = get_locale()
        if locale is None:  # outside a request
            return support.NullTranslations()
        name = CATALOG_NAMES.get(str(locale), str(locale))
        translations = self.cache.get(name)
        if translations is None:
            translations = self.cache[name] = support.Translations.load(self.translation_directories[0], [name],
                                                                        self.domain[0])
        return translations


def user_locale() -> str:
    """'zh' or 'en': the signed-in user's choice, else the one chosen on the sign-in page, else Chinese."""
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.locale if current_user.locale in BABEL_LOCALES else DEFAULT_LOCALE
    chosen = session.get("locale")
    return chosen if chosen in BABEL_LOCALES else DEFAULT_LOCALE


def select_locale() -> str:
    """The Babel locale name of the request (Flask-Babel parses it once per request)."""
    return BABEL_LOCALES[user_locale()]


def is_zh() -> bool:
    """Whether the request's language is Chinese."""
    return str(get_locale()).startswith("zh")


def pick(obj, field: str = "") -> str:
    """The text of a bilingual value (an object or dict with `zh` and `en`) in the UI language."""
    if obj is None:
        return ""
    lang = "zh" if is_zh() else "en"
    if isinstance(obj, dict):
        return obj.get(lang) or obj.get("zh") or ""
    return getattr(obj, lang, "") or getattr(obj, "zh", "")


def listing(items, *, clauses: bool = False) -> str:
    """Items joined as the language lists them: 、 (or ； between clauses) in Chinese, ", " ("; ") in English."""
    sep = ("；" if clauses else "、") if is_zh() else ("; " if clauses else ", ")
    return sep.join(str(i) for i in items)


def list_separator(clauses: bool = False) -> str:
    """The separator `listing` puts between items, for templates that join marked-up items themselves."""
    return ("；" if clauses else "、") if is_zh() else ("; " if clauses else ", ")


def branch_name(branch) -> str:
    """A branch's name in the UI language: its English name in English (its Chinese name where it has none)."""
    if branch is None:
        return ""
    if isinstance(branch, dict):
        return branch.get("name", "") if is_zh() else (branch.get("name_en") or branch.get("name", ""))
    return branch.name if is_zh() else (branch.name_en or branch.name)


def _locale_and_zone():
    """The request's Babel locale and time zone (Flask-Babel keeps both for the request)."""
    return get_locale(), get_timezone()


def fmt_date(value) -> str:
    """A date in the user's locale (medium format: 2025年3月4日, Mar 4, 2025)."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    locale, zone = _locale_and_zone()
    if isinstance(value, datetime):  # the day it was in the user's time zone (naive values are UTC)
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(_zoneinfo(zone)).date()
    return _medium_date(value, locale)


@lru_cache(maxsize=16)
def _zoneinfo(zone) -> ZoneInfo:
    """The standard library's zone of Flask-Babel's (pytz) time zone: its conversions run in C, pytz's
    `normalize` in Python, for each of the fifty moments an inbox page shows."""
    return ZoneInfo(str(zone))


@lru_cache(maxsize=8192)
def _medium_date(value: date, locale: Locale) -> str:
    """Babel's medium date, remembered: lists show the same few hundred dates over and over."""
    return babel_dates.format_date(value, "medium", locale=locale)


def fmt_datetime(value) -> str:
    """A moment in the user's locale and time zone; naive values are UTC, as stored."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    locale, zone = _locale_and_zone()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(_zoneinfo(zone))
    # What babel.dates.format_datetime(local, "medium") returns, from the locale's patterns directly and the
    # remembered date: a case page formats a dozen moments, and Babel's look-ups took most of the 23 µs each.
    joined, time_pattern = _medium_datetime_patterns(locale)
    return joined.replace("{0}", time_pattern.apply(local, locale)).replace("{1}", _medium_date(local.date(), locale))


@lru_cache(maxsize=8)
def _medium_datetime_patterns(locale: Locale):
    """The locale's medium date-time joining pattern (quotes removed, as Babel does) and time pattern."""
    return babel_dates.get_datetime_format("medium", locale=locale).replace("'", ""), locale.time_formats["medium"]


def fmt_money(value) -> str:
    """An amount with thousands separators and two decimals: "1,234.50 元" in Chinese, "CNY 1,234.50" in
    English (the currency's ISO code, as English banking texts write it)."""
    if value is None:
        return "—"
    figure = format_decimal(Decimal(str(value)), format='#,##0.00')
    return f"{figure} 元" if is_zh() else f"CNY {figure}"


def fmt_size(size: int | None) -> str:
    """A file size in the user's locale: bytes below 1 KB, then KB and MB (1 KB = 1,024 bytes)."""
    if size is None:
        return "—"
    locale = _locale_and_zone()[0]
    for limit, unit in ((1024 * 1024, "digital-megabyte"), (1024, "digital-kilobyte")):
        if size >= limit:
            return format_unit(Decimal(size) / limit, unit, length="short", format="#,##0.#", locale=locale)
    return format_unit(size, "digital-byte", length="short", format="#,##0", locale=locale)


def state_label(code: str | None) -> str:
    if not code:
        return "—"
    labels = STATE_LABELS.get(code)
    return (labels["zh"] if is_zh() else labels["en"]) if labels else code


RECORD_LABELS = {"cases": _l("Cases"), "loans": _l("Loans"), "respondents": _l("Respondents"), "facts": _l("Facts"),
                 "recommendations": _l("Recommendations"), "votes": _l("Votes"),
                 "determinations": _l("Determinations"), "appeals": _l("Appeals"), "letters": _l("Documents"),
                 "evidence": _l("Evidence"), "audit": _l("Audit trail"), "access_log": _l("Access log")}
OUTCOME_LABELS = {"exempt": _l("Exempt"), "reduced": _l("Reduced liability"), "liable": _l("Liable")}
DECISION_LABELS = {"upheld": _l("Upheld"), "altered": _l("Altered")}
ROLE_LABELS = {
    "credit_officer": _l("Credit officer"), "investigator": _l("Investigator"),
    "committee_member": _l("Committee member"), "committee_chair": _l("Committee chair"),
    "appeal_reviewer": _l("Appeal reviewer"), "appeal_chair": _l("Appeal committee chair"),
    "auditor": _l("Internal auditor"), "admin": _l("Administrator"),
}
STAGE_LABELS = {
    "marketing": _l("Marketing"), "acceptance": _l("Acceptance"), "pre_loan": _l("Pre-loan investigation"),
    "review": _l("Credit review"), "approval": _l("Approval"), "disbursement": _l("Disbursement check"),
    "post_loan": _l("Post-loan management"),
}
LIABILITY_LABELS = {"compliance": _l("Compliance liability"), "diligence": _l("Diligence liability"),
                    "management": _l("Management liability")}
LETTER_LABELS = {"determination": _l("Determination letter"), "appeal_record": _l("Appeal record"),
                 "appeal_decision": _l("Appeal decision"), "case_summary": _l("Case summary"),
                 "investigation_report": _l("Investigation report"), "publicity_notice": _l("Publicity notice"),
                 "minutes": _l("Meeting minutes"), "referral": _l("Referral letter"),
                 "batch_report": _l("Batch duty-review report"), "service_record": _l("Certificate of service")}
EVENT_LABELS = {
    "open_case": _l("Case registered"), "assign_investigator": _l("Investigator assigned"),
    "file_statement": _l("Statement filed"), "decline_statement": _l("Declined to file a statement"),
    "record_facts": _l("Facts recorded"),
    "add_evidence": _l("Evidence added"), "submit_investigation": _l("Investigation submitted"),
    "recommendation": _l("Recommendation computed"), "return_for_investigation": _l("Returned for investigation"),
    "record_vote": _l("Vote cast"), "votes_invalidated": _l("Votes invalidated"), "determine": _l("Determined"),
    "issue_letter": _l("Letter issued"), "start_publicity": _l("Publicity started"),
    "reopen": _l("Reopened after an objection"), "end_publicity": _l("Publicity ended"),
    "file_appeal": _l("Appeal filed"), "close_appeal_window": _l("Appeal window closed"),
    "appeal_vote": _l("Appeal panel vote cast"), "decide_appeal": _l("Appeal decided"), "conclude_appeals": _l("Appeals concluded"),
    "refer_for_accountability": _l("Referred for accountability"), "close": _l("Closed"),
    "withdraw": _l("Withdrawn"), "legal_hold": _l("Legal hold placed"), "legal_hold_lifted": _l("Legal hold lifted"),
    "serve_letter": _l("Letter served"), "waive_appeal": _l("Appeal waived"),
    "appeal_deadline_moved": _l("Appeal deadline moved"),
    "urge": _l("Step urged"), "comment": _l("Comment added"), "one_year_limit": _l("One-year limit reached"),
    "deadline_missed": _l("Deadline missed"),
    "propose_precedent": _l("Proposed as a precedent"), "edit_precedent": _l("Precedent edited"),
    "approve_precedent": _l("Precedent approved"), "reject_precedent": _l("Precedent rejected"),
    "record_sanction": _l("Sanctions recorded"), "refund_due": _l("Refund due"),
}
STEP_LABELS = {"negative_list": _l("Negative list"), "positive_list": _l("Positive list"),
               "no_evidence_of_fault": _l("No evidence of fault"), "tolerance_presumption": _l("Tolerance presumption"),
               "minor_fault": _l("Minor fault"), "otherwise": _l("Otherwise")}
CLASSIFICATION_LABELS = {"normal": _l("Normal"), "special_mention": _l("Special mention"),
                         "substandard": _l("Substandard"), "doubtful": _l("Doubtful"), "loss": _l("Loss")}
EVIDENCE_KIND_LABELS = {"document": _l("Document"), "investigation": _l("Investigation"),
                        "statement": _l("Statement"), "appeal": _l("Appeal")}
LEVEL_LABELS = {0: _l("Head office"), 1: _l("Tier-1 branch"), 2: _l("Sub-branch"), 3: _l("Outlet")}
SERVICE_METHOD_LABELS = {"in_person": _l("In person"), "in_app": _l("Acknowledged in the app"), "post": _l("By post")}
ACTION_LABELS = {
    "assign": _l("Assign investigator"), "statement": _l("File my statement"), "facts": _l("Record facts"),
    "evidence": _l("Upload evidence"), "submit": _l("Submit the investigation"),
    "return": _l("Return for investigation"), "vote": _l("Vote"), "determine": _l("Sign the determination"),
    "issue_letters": _l("Issue the determination letters"), "start_publicity": _l("Start publicity"),
    "reopen": _l("Reopen after an objection"), "end_publicity": _l("End publicity"),
    "close_appeal_window": _l("Close the appeal window"), "appeal": _l("File an appeal"),
    "appeal_vote": _l("Vote on the appeal"), "decide_appeal": _l("Sign the appeal decision"),
    "conclude": _l("Conclude the appeals"),
    "refer": _l("Refer for accountability"), "close": _l("Close the case"), "withdraw": _l("Withdraw"),
    "legal_hold": _l("Legal hold"), "record_service": _l("Record the service of a letter"),
    "acknowledge": _l("Acknowledge my letter"), "waive_appeal": _l("Waive my appeal"),
    "preview_documents": _l("Preview the documents"), "urge": _l("Urge"),
    "propose_precedent": _l("Propose as a precedent"),
    "record_sanctions": _l("Record the sanctions applied"),
}
STATEMENT_POSITION_LABELS = {
    "filed": _l("Statement filed"), "declined": _l("Declined to file a statement"),
    "awaited": _l("Awaited: the deadline has not passed"), "lapsed": _l("Let the deadline pass without a statement"),
    "not_invited": _l("No deadline (registered before invitations)"),
}
JOB_KIND_LABELS = {"letter_batch": _l("Letter batch"), "export": _l("Audit export"), "bundle": _l("Evidence bundle"),
                   "loan_import": _l("Loan import")}
JOB_STATUS_LABELS = {"queued": _l("Queued"), "running": _l("Running"), "done": _l("Done"), "failed": _l("Failed")}
PRECEDENT_STATUS_LABELS = {"proposed": _l("Awaiting approval"), "approved": _l("Approved"),
                           "rejected": _l("Rejected")}
PRODUCT_LABELS = {"inclusive_sme": _l("Inclusive SME loan"), "farmer_business": _l("Farmer business loan")}
AMOUNT_BAND_LABELS = {"upto_1m": _l("up to 1 million yuan"), "1m_3m": _l("over 1 and up to 3 million yuan"),
                      "3m_5m": _l("over 3 and up to 5 million yuan"), "5m_10m": _l("over 5 and up to 10 million yuan"),
                      "over_10m": _l("over 10 million yuan")}


def label(table: dict, code: str | None) -> str:
    if code is None or code == "":
        return "—"
    value = table.get(code)
    return str(value) if value is not None else code


def register_filters(app) -> None:
    """Make the helpers available in every template.

    `_`, `gettext` and `ngettext` are Jinja's i18n extension as Flask-Babel installs it: new-style gettext,
    so in an autoescaped template a translation is safe and its `%(name)s` variables are escaped into it.
    """
    app.jinja_env.filters.update(
        date=fmt_date, datetime=fmt_datetime, money=fmt_money, filesize=fmt_size, state=state_label, pick=pick,
        branch_name=branch_name,
        outcome=lambda c: label(OUTCOME_LABELS, c), decision=lambda c: label(DECISION_LABELS, c),
        role=lambda c: label(ROLE_LABELS, c), stage=lambda c: label(STAGE_LABELS, c),
        liability=lambda c: label(LIABILITY_LABELS, c), letter_kind=lambda c: label(LETTER_LABELS, c),
        event=lambda c: label(EVENT_LABELS, c), step=lambda c: label(STEP_LABELS, c),
        heard=lambda c: label(STATEMENT_POSITION_LABELS, c), record=lambda c: label(RECORD_LABELS, c),
        listing=listing,
    )
    app.jinja_env.globals.update(ui_locale=user_locale, is_zh=is_zh, list_separator=list_separator, action_labels=ACTION_LABELS,
                                 classification_labels=CLASSIFICATION_LABELS, evidence_kinds=EVIDENCE_KIND_LABELS,
                                 level_labels=LEVEL_LABELS, service_methods=SERVICE_METHOD_LABELS,
                                 precedent_status=PRECEDENT_STATUS_LABELS, product_labels=PRODUCT_LABELS,
                                 band_labels=AMOUNT_BAND_LABELS, job_kinds=JOB_KIND_LABELS,
                                 job_statuses=JOB_STATUS_LABELS)
