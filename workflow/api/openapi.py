"""The OpenAPI 3.1 document, generated from the declared operations and their pydantic models, and a small
self-contained explorer page (no external scripts or styles: the deployment has no CDN)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from html import escape

from flask import Response
from pydantic import BaseModel

from . import schemas as S
from .core import MAX_ID, OPERATIONS, bp, json_response

TITLE = "Mianze (免责) API"
VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed JSON, a wrong type, an unknown field or an invalid value",
    401: "No valid API token (Authorization: Bearer <token>)",
    403: "Your roles or the segregation of duties do not allow this",
    404: "Unknown id, or outside your branch scope",
    409: "Event not allowed in the current state, a guard does not hold, or a stale expected_version; "
         "details carry the case's current state and version",
    413: "The request body is larger than the configured limit",
    415: "Unsupported content type",
    422: "Semantically invalid (e.g. an import with bad rows; a loan outside the exemption scope)",
    503: "The server cannot render documents (code letter_font_missing: the Chinese letter font is missing); "
         "nothing was issued or changed",
}


def _schema(model: type[BaseModel], components: dict, mode: str) -> dict:
    """A $ref to `model`, adding it and its definitions to the components."""
    generated = model.model_json_schema(ref_template=_REF, mode=mode)
    for name, definition in generated.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, generated)
    return {"$ref": _REF.format(model=model.__name__)}


# Text may not hold NUL (PostgreSQL cannot store it; core refuses it with 400): every string of a request says so.
NO_NUL = "^[^\\x00]*$"


def _forbid_nul(schema, components: dict, seen: set[str]) -> None:
    """Say in a request's schema what parsing enforces beyond pydantic's schema, in place: every string
    without a pattern, enum or format is free of NUL, and a dict whose keys have a pattern has no other key."""
    if isinstance(schema, list):
        for item in schema:
            _forbid_nul(item, components, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _forbid_nul(components[name], components, seen)
        return
    types = schema.get("type")
    if (types == "string" or (isinstance(types, list) and "string" in types)) and not (
            {"pattern", "enum", "const", "format"} & set(schema)):
        schema["pattern"] = NO_NUL
    for key in ("properties", "patternProperties"):
        for sub in schema.get(key, {}).values():
            _forbid_nul(sub, components, seen)
    for key in ("items", "additionalProperties", "propertyNames", "anyOf", "oneOf", "allOf", "prefixItems"):
        if key in schema:
            _forbid_nul(schema[key], components, seen)
    if isinstance(schema.get("additionalProperties"), dict) and "propertyNames" not in schema:
        schema["propertyNames"] = {"pattern": NO_NUL}
    if "patternProperties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False  # pydantic's dict[Annotated[str, pattern], ...]: no other key


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    generated = model.model_json_schema(ref_template=_REF, mode="validation")
    required = set(generated.get("required", []))
    params = []
    for name, prop in generated["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A query value is text; `null` cannot be sent, so an optional parameter is simply omitted.
        if "anyOf" in prop:
            options = [o for o in prop["anyOf"] if o.get("type") != "null"]
            if len(options) == 1:
                prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]}
            if "default" in prop and prop["default"] is None:
                del prop["default"]
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


@lru_cache(maxsize=1)
def document() -> dict:
    """The OpenAPI 3.1 document of every declared operation."""
    components: dict[str, dict] = {}
    error_ref = _schema(S.Error, components, "serialization")
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        item: dict = {"operationId": op.endpoint, "summary": op.summary, "tags": [op.tag]}
        if op.description:
            item["description"] = op.description
        if op.logged:
            item["description"] = (op.description + "\n\n" if op.description else "") + \
                "Each successful call is recorded in the access log (`api_read`)."
            item["x-access-logged"] = True
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
                      for name in _path_params(op.path)]
        if op.query is not None:
            parameters += _query_parameters(op.query)
        if parameters:
            item["parameters"] = parameters
        if op.body is not None or op.extra_bodies:
            content = {} if op.body is None else {
                "application/json": {"schema": _schema(op.body, components, "validation")}}
            content.update(op.extra_bodies)
            item["requestBody"] = {"required": True, "content": content}
        responses: dict[str, dict] = {}
        if op.produces == "application/json":
            schema = _schema(op.response, components, "serialization") if op.response else {}
            responses[str(op.status)] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        else:
            responses[str(op.status)] = {"description": "OK", "content": {  # "a, b": either, as the request asks
                kind.strip(): {"schema": {"type": "string", "format": "binary"}} for kind in op.produces.split(",")}}
        codes = set(op.errors) | ({401} if op.auth else set()) | ({400} if op.query or op.body else set())
        if op.body is not None:
            codes |= {413, 415}
        for code in sorted(codes):
            responses[str(code)] = {"description": _ERROR_TEXT[code],
                                    "content": {"application/json": {"schema": error_ref}}}
        item["responses"] = responses
        if op.auth:
            item["security"] = [{"bearer": []}]
        paths.setdefault("/api/v1" + op.path, {})[op.method] = item
    seen: set[str] = set()
    for item in paths.values():
        for op in item.values():
            for param in op.get("parameters", []):
                _forbid_nul(param["schema"], components, seen)
            if "requestBody" in op:
                _forbid_nul(op["requestBody"]["content"].get("application/json", {}).get("schema"), components, seen)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Core-banking integration for Mianze: feed loans and stage handlers, open cases, "
                                "drive them through their lifecycle, and pull decisions, letters and audit trails "
                                "back. Authenticate with a per-user API token issued by an administrator."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a per-user API token (mz_…)"}}},
        "security": [{"bearer": []}],
    }


def _path_params(path: str) -> list[str]:
    return re.findall(r"{(\w+)}", path)


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI document (no token needed)."""
    return json_response(document())


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.45 system-ui,"Noto Sans CJK SC",sans-serif;margin:0;color:#1d2733;background:#f6f7f9}}
header{{background:#223;color:#fff;padding:12px 20px}} header h1{{font-size:18px;margin:0}}
main{{max-width:1100px;margin:0 auto;padding:16px}} .tok{{margin:10px 0}} .tok input{{width:420px}}
details{{background:#fff;border:1px solid #d5d9e0;border-radius:6px;margin:6px 0}}
summary{{cursor:pointer;padding:8px 12px}} .m{{display:inline-block;width:56px;font-weight:700}}
.get{{color:#0a6}} .post{{color:#06c}} .put{{color:#a60}} .delete{{color:#c22}}
.body{{padding:8px 14px 14px}} textarea{{width:100%;min-height:110px;font:12px monospace}}
pre{{background:#f0f2f5;padding:8px;overflow:auto;max-height:420px;font-size:12px}}
label{{display:block;margin:4px 0}} label input{{width:260px}} h2{{font-size:15px;margin:18px 0 6px}}
</style></head><body>
<header><h1>{title} <small>v{version}</small></h1></header>
<main>
<p>Interactive explorer of <a href="openapi.json">openapi.json</a>. Requests run from this page against this
server with the token below (kept only in this tab).</p>
<div class="tok"><label>API token <input id="token" type="password" placeholder="mz_…" autocomplete="off"></label></div>
<div id="ops">Loading…</div>
</main>
<script>
"use strict";
const el=(t,a={{}},...k)=>{{const e=document.createElement(t);for(const[n,v]of Object.entries(a))
  n==="class"?e.className=v:e.setAttribute(n,v);for(const c of k)e.append(c);return e;}};
function resolve(doc,s){{if(s&&s.$ref){{return doc.components.schemas[s.$ref.split("/").pop()];}}return s||{{}};}}
function example(doc,s,depth=0){{s=resolve(doc,s);if(depth>6)return null;
  if(s.default!==undefined)return s.default; if(s.enum)return s.enum[0]; if(s.const!==undefined)return s.const;
  if(s.anyOf)return example(doc,s.anyOf[0],depth+1);
  if(s.type==="object"||s.properties){{const o={{}};for(const[k,v]of Object.entries(s.properties||{{}}))
    if((s.required||[]).includes(k))o[k]=example(doc,v,depth+1);return o;}}
  if(s.type==="array")return [];if(s.type==="integer")return s.minimum||1;if(s.type==="number")return 0;
  if(s.type==="boolean")return false;if(s.format==="date")return "2025-12-31";return "";}}
async function run(path,method,op,form,out){{
  let url=path;const q=new URLSearchParams();
  for(const p of op.parameters||[]){{const v=form.querySelector(`[name="${{p.in}}:${{p.name}}"]`).value;
    if(p.in==="path")url=url.replace(`{{${{p.name}}}}`,encodeURIComponent(v));else if(v!=="")q.set(p.name,v);}}
  if([...q].length)url+="?"+q;
  const h={{}};const tok=document.getElementById("token").value.trim();if(tok)h.Authorization="Bearer "+tok;
  const init={{method:method.toUpperCase(),headers:h}};const ta=form.querySelector("textarea");
  if(ta){{h["Content-Type"]="application/json";init.body=ta.value;}}
  out.textContent="…";
  try{{const r=await fetch(url,init);const ct=r.headers.get("Content-Type")||"";
    if(ct.includes("json")){{out.textContent=r.status+" "+r.statusText+"\\n"+JSON.stringify(await r.json(),null,2);}}
    else if(r.ok){{const b=await r.blob();const a=el("a",{{href:URL.createObjectURL(b),download:"download"}},"download ("+b.size+" bytes)");
      out.textContent=r.status+" "+ct+" ";out.append(a);}}else out.textContent=r.status+" "+await r.text();
  }}catch(e){{out.textContent=String(e);}}}}
fetch("openapi.json").then(r=>r.json()).then(doc=>{{
  const root=document.getElementById("ops");root.textContent="";const byTag={{}};
  for(const[path,item]of Object.entries(doc.paths))for(const[method,op]of Object.entries(item))
    (byTag[op.tags[0]]=byTag[op.tags[0]]||[]).push([path,method,op]);
  for(const[tag,ops]of Object.entries(byTag)){{root.append(el("h2",{{}},tag));
    for(const[path,method,op]of ops){{const form=el("form");const out=el("pre");
      for(const p of op.parameters||[])form.append(el("label",{{}},`${{p.name}} (${{p.in}}${{p.required?", required":""}}) `,
        el("input",{{name:`${{p.in}}:${{p.name}}`,placeholder:(p.schema&&(p.schema.format||p.schema.type))||""}})));
      const rb=op.requestBody&&op.requestBody.content["application/json"];
      if(rb){{const ta=el("textarea");ta.value=JSON.stringify(example(doc,rb.schema),null,2);form.append(ta);}}
      const btn=el("button",{{type:"submit"}},"Send");form.append(btn);
      form.addEventListener("submit",ev=>{{ev.preventDefault();run(path,method,op,form,out);}});
      const d=el("details",{{}},el("summary",{{}},el("span",{{class:"m "+method}},method.toUpperCase()),path+" — "+op.summary),
        el("div",{{class:"body"}},el("p",{{}},op.description||""),form,out));
      root.append(d);}}}}
}}).catch(e=>{{document.getElementById("ops").textContent="Cannot load openapi.json: "+e;}});
</script></body></html>"""


@bp.get("/docs")
def docs_page():
    """The interactive explorer (self-contained HTML; no external resources)."""
    html = _PAGE.format(title=escape(TITLE), version=escape(VERSION))
    return Response(html, mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                                        "style-src 'unsafe-inline'; img-src 'self' data:; "
                                                        "connect-src 'self'"})


def document_json() -> str:
    """The document as pretty JSON (for `flask --app wsgi openapi` style exports and tests)."""
    return json.dumps(document(), ensure_ascii=False, indent=2)
