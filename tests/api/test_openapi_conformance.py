"""schemathesis over the served OpenAPI document with all its checks: no server error, no contract deviation.

The run is schemathesis' own engine, as `st run --checks all` drives it: every phase (coverage, fuzzing with
positive and negative data, stateful sequences), every check, each operation authenticated with a real
administrator's token, against the app served over HTTP on 127.0.0.1 (the in-process WSGI transport of
schemathesis cannot send the probes of its `ignored_auth` check). The app holds the small bank with one case
under review, so reads find real rows. In CI the examples are the same every run.

One setting states our contract rather than schemathesis' default: a request that matches the document may
be refused for a rule about the data it names (a loan already in an open case, a code the rule set lacks)
with 422 (docs/api.md), so positive data may also answer 422. It may never answer 400: 400 means the
document refuses the request.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.factories import drive

MAX_EXAMPLES = 12  # per operation, phase and mode: a run of about 30 s on these machines
POSITIVE_ANSWERS = ["200", "201", "202", "401", "403", "404", "409", "422"]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # thousands of requests: the failures say what matters
        pass


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_every_operation_meets_its_contract_under_all_checks(sqlite_api):
    drive(sqlite_api.bank, "under_review")
    server = _serve(sqlite_api.app)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", config=SchemathesisConfig())
        config = schema.config
        config.update(base_url=base, headers=sqlite_api.headers("admin"))
        config.checks.update(included_check_names=["all"])
        config.checks.positive_data_acceptance.expected_statuses = POSITIVE_ANSWERS
        config.generation.update(max_examples=MAX_EXAMPLES, deterministic=bool(os.environ.get("CI")),
                                 database="none")
        failures, errors, checked = [], [], Counter()
        operations = set()
        finished = None
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                operations.add(event.recorder.label)
                for case_id, results in event.recorder.checks.items():
                    for result in results:
                        checked[result.name] += 1
                        if result.failure_info is not None:
                            response = event.recorder.interactions[case_id].response
                            failures.append(f"{event.recorder.label} [{event.phase.value}] {result.name}: "
                                            f"{result.failure_info.failure.title}\n{result.failure_info.code_sample}\n"
                                            f"=> {response.status_code if response else '-'} "
                                            f"{(response.content or b'')[:300] if response else ''}")
            elif isinstance(event, events.NonFatalError | events.FatalError):
                errors.append(f"{getattr(event, 'label', '')}: {getattr(event, 'value', getattr(event, 'exception', ''))}")
            elif isinstance(event, events.EngineFinished):
                finished = event
    finally:
        server.shutdown()

    assert finished is not None and finished.stop_reason.value == "completed"
    assert not errors, "\n".join(errors[:10])
    assert len(operations - {"Stateful tests"}) == len(list(schema.get_all_operations())) >= 25
    assert set(checked) >= {"not_a_server_error", "status_code_conformance", "content_type_conformance",
                            "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
                            "positive_data_acceptance", "missing_required_header", "unsupported_method",
                            "ignored_auth"}, sorted(checked)
    distinct = list(dict.fromkeys(failures))
    assert not distinct, f"{len(distinct)} deviations:\n\n" + "\n\n".join(distinct[:12])
