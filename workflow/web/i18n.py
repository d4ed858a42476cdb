"""Language helpers: the user's locale, dates and amounts in it, and labels for codes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, support
from babel import dates as babel_dates
from flask import session
from flask_babel import Domain, format_decimal, get_locale, get_timezone
from flask_babel.speaklater import LazyString
from flask_login import current_user
from markupsafe import Markup

from ..domain.states import STATE_LABELS
from .request_cache import per_request

BABEL_LOCALES = {"zh": "zh_CN", "en": "en"}
DEFAULT_LOCALE = "zh"


# Babel calls Simplified Chinese "zh_Hans_CN"; the catalogue directory is named as pybabel's -l zh_CN.
CATALOG_NAMES = {"zh_Hans_CN": "zh_CN"}


def _gettext_now(string: str, **variables) -> str:
    """What Flask-Babel's gettext returns, with the request's catalogue from the per-request cache."""
    text = _translations().ugettext(string)
    return text % variables if variables else text


def _l(string: str, **variables) -> LazyString:
    """A text translated when it is used, as Flask-Babel's `lazy_gettext` (also the extraction keyword).

    Labels of codes and reasons are such texts, and a page uses dozens: Flask-Babel's own gettext finds the
    app, its extension and its domain again for each before looking the text up.
    """
    return LazyString(_gettext_now, string, **variables)


class CatalogDomain(Domain):
    """The default domain, finding the zh_CN catalogue for Babel's zh_Hans_CN locale."""

    def get_translations(self):
        return per_request("mianze_translations", self._load_translations)

    def _load_translations(self):
        locale = get_locale()
        if locale is None:
            return support.NullTranslations()
        name = CATALOG_NAMES.get(str(locale), str(locale))
        cached = self.cache.get(name)
        if cached is None:
            cached = support.Translations()
            cached.mianze_name = name  # templates are compiled once per catalogue (templating.py)
            for dirname in self.translation_directories:
                loaded = support.Translations.load(dirname, [name], self.domain[0])
                cached.merge(loaded)
                if getattr(loaded, "plural", None) is not None:  # the catalogue's plural rule, not English's
                    cached.plural = loaded.plural
            self.cache[name] = cached
        return cached


def user_locale() -> str:
    """'zh' or 'en': the signed-in user's choice, else the one chosen on the sign-in page, else Chinese."""
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.locale if current_user.locale in BABEL_LOCALES else DEFAULT_LOCALE
    chosen = session.get("locale")
    return chosen if chosen in BABEL_LOCALES else DEFAULT_LOCALE


_PARSED_LOCALES: dict[str, Locale] = {}


def select_locale() -> Locale:
    """The Babel locale of the request (parsed once per process: parsing scans Babel's data directory)."""
    name = BABEL_LOCALES[user_locale()]
    locale = _PARSED_LOCALES.get(name)
    if locale is None:
        locale = _PARSED_LOCALES[name] = Locale.parse(name)
    return locale


def is_zh() -> bool:
    """Whether the request's language is Chinese (asked for every label a page shows)."""
    return per_request("mianze_zh", lambda: str(get_locale()).startswith("zh"))


def pick(obj, field: str = "") -> str:
    """The text of a bilingual value (an object or dict with `zh` and `en`) in the UI language."""
    if obj is None:
        return ""
    lang = "zh" if is_zh() else "en"
    if isinstance(obj, dict):
        return obj.get(lang) or obj.get("zh") or ""
    return getattr(obj, lang, "") or getattr(obj, "zh", "")


def _locale_and_zone():
    """The request's Babel locale and time zone (pages format dozens of dates)."""
    return per_request("mianze_locale_zone", lambda: (get_locale(), get_timezone()))


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
    """An amount with thousands separators and two decimals, followed by 元."""
    if value is None:
        return "—"
    return f"{format_decimal(Decimal(str(value)), format='#,##0.00')} 元"


def state_label(code: str | None) -> str:
    if not code:
        return "—"
    labels = STATE_LABELS.get(code)
    return (labels["zh"] if is_zh() else labels["en"]) if labels else code


OUTCOME_LABELS = {"exempt": _l("Exempt"), "reduced": _l("Reduced liability"), "liable": _l("Liable")}
DECISION_LABELS = {"upheld": _l("Upheld"), "altered": _l("Altered")}
ROLE_LABELS = {
    "credit_officer": _l("Credit officer"), "investigator": _l("Investigator"),
    "committee_member": _l("Committee member"), "committee_chair": _l("Committee chair"),
    "appeal_reviewer": _l("Appeal reviewer"), "auditor": _l("Internal auditor"), "admin": _l("Administrator"),
}
STAGE_LABELS = {
    "marketing": _l("Marketing"), "acceptance": _l("Acceptance"), "pre_loan": _l("Pre-loan investigation"),
    "review": _l("Credit review"), "approval": _l("Approval"), "disbursement": _l("Disbursement check"),
    "post_loan": _l("Post-loan management"),
}
LIABILITY_LABELS = {"compliance": _l("Compliance liability"), "diligence": _l("Diligence liability"),
                    "management": _l("Management liability")}
LETTER_LABELS = {"determination": _l("Determination letter"), "appeal_record": _l("Appeal record"),
                 "appeal_decision": _l("Appeal decision"), "case_summary": _l("Case summary")}
EVENT_LABELS = {
    "open_case": _l("Case registered"), "assign_investigator": _l("Investigator assigned"),
    "file_statement": _l("Statement filed"), "record_facts": _l("Facts recorded"),
    "add_evidence": _l("Evidence added"), "submit_investigation": _l("Investigation submitted"),
    "recommendation": _l("Recommendation computed"), "return_for_investigation": _l("Returned for investigation"),
    "record_vote": _l("Vote cast"), "votes_invalidated": _l("Votes invalidated"), "determine": _l("Determined"),
    "issue_letter": _l("Letter issued"), "start_publicity": _l("Publicity started"),
    "reopen": _l("Reopened after an objection"), "end_publicity": _l("Publicity ended"),
    "file_appeal": _l("Appeal filed"), "close_appeal_window": _l("Appeal window closed"),
    "decide_appeal": _l("Appeal decided"), "conclude_appeals": _l("Appeals concluded"),
    "refer_for_accountability": _l("Referred for accountability"), "close": _l("Closed"),
    "withdraw": _l("Withdrawn"), "legal_hold": _l("Legal hold placed"), "legal_hold_lifted": _l("Legal hold lifted"),
}
STEP_LABELS = {"negative_list": _l("Negative list"), "positive_list": _l("Positive list"),
               "no_evidence_of_fault": _l("No evidence of fault"), "tolerance_presumption": _l("Tolerance presumption"),
               "minor_fault": _l("Minor fault"), "otherwise": _l("Otherwise")}
CLASSIFICATION_LABELS = {"normal": _l("Normal"), "special_mention": _l("Special mention"),
                         "substandard": _l("Substandard"), "doubtful": _l("Doubtful"), "loss": _l("Loss")}
EVIDENCE_KIND_LABELS = {"document": _l("Document"), "investigation": _l("Investigation"),
                        "statement": _l("Statement"), "appeal": _l("Appeal")}
LEVEL_LABELS = {0: _l("Head office"), 1: _l("Tier-1 branch"), 2: _l("Sub-branch"), 3: _l("Outlet")}
ACTION_LABELS = {
    "assign": _l("Assign investigator"), "statement": _l("File my statement"), "facts": _l("Record facts"),
    "evidence": _l("Upload evidence"), "submit": _l("Submit the investigation"),
    "return": _l("Return for investigation"), "vote": _l("Vote"), "determine": _l("Sign the determination"),
    "issue_letters": _l("Issue the determination letters"), "start_publicity": _l("Start publicity"),
    "reopen": _l("Reopen after an objection"), "end_publicity": _l("End publicity"),
    "close_appeal_window": _l("Close the appeal window"), "appeal": _l("File an appeal"),
    "decide_appeal": _l("Decide"), "conclude": _l("Conclude the appeals"),
    "refer": _l("Refer for accountability"), "close": _l("Close the case"), "withdraw": _l("Withdraw"),
    "legal_hold": _l("Legal hold"),
}


def label(table: dict, code: str | None) -> str:
    if code is None or code == "":
        return "—"
    value = table.get(code)
    return str(value) if value is not None else code


def _translations():
    """The request's catalogue, without Flask-Babel's per-call look-ups of the app, its Babel extension and
    its domain (CatalogDomain loads it)."""
    from flask_babel import get_translations

    return per_request("mianze_translations", get_translations)


def template_catalogue() -> tuple[str, object | None]:
    """The name and catalogue the request's templates are compiled with (see `templating`).

    A catalogue this module did not load (it has no name) gets templates compiled as written.
    """
    catalogue = _translations()
    if type(catalogue) is support.NullTranslations:  # no locale: texts stay as written
        return "-", catalogue
    name = getattr(catalogue, "mianze_name", None)
    return (name, catalogue) if name else ("as written", None)


def _bound_gettext() -> dict:
    """`_`, `gettext` and `ngettext` for one page, bound to the request's catalogue once.

    The same results as the callables installed below (Jinja's new-style gettext in an autoescaped
    template: the translation is Markup and `%(name)s` variables are escaped into it), without the catalogue
    look-up and Jinja's context call for each of the hundred strings a page translates. Macros imported
    without context use the installed callables.
    """
    catalogue = _translations()
    ugettext, ungettext = catalogue.ugettext, catalogue.ungettext

    def gettext(string, **variables):
        return Markup(ugettext(string)) % variables

    def ngettext(singular, plural, num, **variables):
        variables.setdefault("num", num)
        return Markup(ungettext(singular, plural, num)) % variables

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def register_filters(app) -> None:
    """Make the helpers available in every template.

    Also re-installs Jinja's gettext callables (Flask-Babel installed them; a page translates about a hundred
    strings) with a shorter look-up of the catalogue, keeping Jinja's new-style semantics (escaping,
    `%(name)s` variables), and binds `_` to `gettext` itself instead of an alias that calls it.
    """
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.jinja_env.globals["_"] = app.jinja_env.globals["gettext"]
    app.context_processor(_bound_gettext)
    app.jinja_env.filters.update(
        date=fmt_date, datetime=fmt_datetime, money=fmt_money, state=state_label, pick=pick,
        outcome=lambda c: label(OUTCOME_LABELS, c), decision=lambda c: label(DECISION_LABELS, c),
        role=lambda c: label(ROLE_LABELS, c), stage=lambda c: label(STAGE_LABELS, c),
        liability=lambda c: label(LIABILITY_LABELS, c), letter_kind=lambda c: label(LETTER_LABELS, c),
        event=lambda c: label(EVENT_LABELS, c), step=lambda c: label(STEP_LABELS, c),
    )
    from .templating import fixed_url

    app.jinja_env.globals.update(ui_locale=user_locale, is_zh=is_zh, fixed_url=fixed_url, action_labels=ACTION_LABELS,
                                 classification_labels=CLASSIFICATION_LABELS, evidence_kinds=EVIDENCE_KIND_LABELS,
                                 level_labels=LEVEL_LABELS)
