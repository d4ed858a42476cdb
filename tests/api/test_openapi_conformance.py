"""schemathesis against the served OpenAPI document: no server errors, no response that breaks the schema.

Bounded: a fixed number of examples per operation (positive and negative data; under 1,000 in all),
authenticated as an administrator, on a SQLite app holding the small bank with one case under review so
that reads find real rows. Driven through hypothesis directly (schemathesis' lazy pytest fixture does not
run under this pytest version).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

BUDGET = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_answers_within_its_documented_schema(sqlite_api):
    from tests.factories import drive

    drive(sqlite_api.bank, "under_review")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", sqlite_api.app)
    headers = sqlite_api.headers("admin")
    failures: list[str] = []
    examples = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25

    def run(operation, mode, budget):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=budget, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def exercise(case):
            nonlocal examples
            examples += 1
            try:
                case.call_and_validate(headers=headers, checks=CHECKS)
            except Exception as exc:  # noqa: BLE001 - collected and reported together below
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                                f"{type(exc).__name__}: {str(exc)[:600]}")

        exercise()

    for operation in operations:
        for mode, budget in BUDGET.items():
            run(operation, mode, budget)

    assert examples <= 1000
    assert not failures, "\n\n".join(failures[:15])
