"""The what-if page (domain.md §9): a credit officer (or anyone of the staff) sets the facts of one credit
stage and sees the outcome the rule set in force gives them, why (each precedence step, which item, which
source) and the approved precedents most like them. Nothing is stored."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_login import login_required

from ..domain.errors import ValidationFailed
from ..models import STAGES
from ..services import evaluation, guidance, rulesets
from .common import reading
from .messages import translate

bp = Blueprint("whatif", __name__, url_prefix="/whatif")
TOLERANCE = ("unknown", "within", "outside")


@bp.get("/")
@login_required
def index():
    args = request.args
    stage = args.get("stage") if args.get("stage") in STAGES else "pre_loan"
    with reading() as s:
        rs = rulesets.parsed(rulesets.version_in_force(s, date.today()))
        if stage not in rs.stage_codes:
            stage = rs.stage_codes[0]
        items = {kind: [i for i in getattr(rs, kind) if i.stages is None or stage in i.stages]
                 for kind in ("positive", "mitigating", "negative")}
        duties = rs.duties_for(stage)
        chosen = {kind: [c for c in args.getlist(kind) if c in {i.code for i in items[kind]}] for kind in items}
        unperformed = [d.code for d in duties if d.code in args.getlist("unperformed")]
        causal = {c for c in unperformed if args.get(f"causal_{c}") == "1"}
        tolerance = args.get("tolerance") if args.get("tolerance") in TOLERANCE else "unknown"
        result = precedents = error = None
        if args.get("evaluate"):
            facts = {"stage": stage, **chosen, "violation": args.get("violation") == "1",
                     "unperformed": [{"duty": c, "causal": c in causal} for c in unperformed], "dissented": False}
            req = {"rule_set": "current", "respondents": [{"id": "what-if", "stages": [facts]}]}
            if tolerance != "unknown":
                req["tolerance"] = {"within": tolerance == "within"}
            try:
                result = evaluation.evaluate(s, req)["respondents"][0]
            except ValidationFailed as exc:
                error = translate(exc.message)
            codes = set(chosen["positive"]) | set(chosen["mitigating"]) | set(chosen["negative"]) | set(unperformed)
            precedents = guidance.similar(s, stage, codes)
    return render_template("whatif/index.html", rs=rs, stage=stage, items=items, duties=duties, chosen=chosen,
                           unperformed=set(unperformed), causal=causal, violation=args.get("violation") == "1",
                           tolerance=tolerance, result=result, precedents=precedents, error=error)
