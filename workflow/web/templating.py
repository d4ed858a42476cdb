"""Templates compiled once per language, with their literal texts already translated.

A page translates about a hundred fixed texts (`_('Loans')`, `_('Decided')` …), each a call at render time:
Jinja's context call, the catalogue look-up, a Markup object and its escaping. Those texts never change
for a language, so each template is compiled once per catalogue and a call of `_` or `gettext` whose only
argument is a literal string becomes that string's translation in the compiled code. With variables
(`_('Case %(number)s', number=…)`) the translation is looked up at compile time too, and only filled in
at render time. `ngettext` and everything else stay calls.

The translation is the one the call would return at render time (Jinja's new-style gettext: the catalogue's
text, marked safe in an autoescaped template and formatted with no variables, so `%%` reads `%`), taken from
the request's own catalogue (`i18n.template_catalogue`) — the one the same request's calls would use.

`fixed_url` builds the links every page repeats (the navigation) once per process and application root.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar

from flask import request, url_for
from flask.templating import Environment
from jinja2 import nodes
from jinja2.utils import internalcode
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from . import i18n

# The catalogue the template being loaded is compiled with (None: compile the calls as they are).
_COMPILING: ContextVar[object | None] = ContextVar("mianze_compiling_catalogue", default=None)
GETTEXT_NAMES = ("_", "gettext")


class _TranslateLiterals(NodeTransformer):
    """Replaces `_('literal')` / `gettext('literal')` by its translation in a parsed template."""

    def __init__(self, catalogue):
        self.catalogue = catalogue

    def visit_Call(self, node: nodes.Call):
        node = self.generic_visit(node)
        callee = node.node
        if not (isinstance(callee, nodes.Name) and callee.name in GETTEXT_NAMES and callee.ctx == "load"
                and len(node.args) == 1 and isinstance(node.args[0], nodes.Const)
                and isinstance(node.args[0].value, str) and node.dyn_args is None and node.dyn_kwargs is None):
            return node
        translated = self.catalogue.ugettext(node.args[0].value)
        if not node.kwargs:  # the text itself
            text = nodes.Const(str(Markup(translated) % {}), lineno=node.lineno)
            return nodes.MarkSafeIfAutoescape(text, lineno=node.lineno)
        # `_('%(n)d days left', n=…)`: the translation is looked up now, the variables filled in (and
        # escaped, in an autoescaped template) when the page is rendered, as the call would.
        variables = nodes.Dict([nodes.Pair(nodes.Const(k.key), k.value, lineno=k.lineno) for k in node.kwargs],
                               lineno=node.lineno)
        template = nodes.MarkSafeIfAutoescape(nodes.Const(translated, lineno=node.lineno), lineno=node.lineno)
        return nodes.Mod(template, variables, lineno=node.lineno)


class LocalizedEnvironment(Environment):
    """Flask's template environment, keeping one compiled template per name and catalogue."""

    @internalcode
    def _load_template(self, name, globals):
        if self.loader is None:
            raise TypeError("no loader for this environment specified")
        key, catalogue = i18n.template_catalogue()
        cache_key = (weakref.ref(self.loader), name, key)
        if self.cache is not None:
            template = self.cache.get(cache_key)
            if template is not None and (not self.auto_reload or template.is_up_to_date):
                if globals:
                    template.globals.update(globals)
                return template
        token = _COMPILING.set(catalogue)
        try:
            template = self.loader.load(self, name, self.make_globals(globals))
        finally:
            _COMPILING.reset(token)
        if self.cache is not None:
            self.cache[cache_key] = template
        return template

    def _parse(self, source, name, filename):
        tree = super()._parse(source, name, filename)
        catalogue = _COMPILING.get()
        if catalogue is None:  # compiled from a string, not loaded: left as written
            return tree
        return _TranslateLiterals(catalogue).visit(tree)


_FIXED_URLS: dict[tuple, str] = {}


def fixed_url(endpoint: str, **values) -> str:
    """`url_for` for the links every page repeats (the navigation), built once per process and application
    root instead of a dozen times per page."""
    key = (request.script_root, endpoint, tuple(sorted(values.items())))
    url = _FIXED_URLS.get(key)
    if url is None:
        if len(_FIXED_URLS) > 1000:  # only the templates' own links are kept; a bound all the same
            _FIXED_URLS.clear()
        url = _FIXED_URLS[key] = url_for(endpoint, **values)
    return url
