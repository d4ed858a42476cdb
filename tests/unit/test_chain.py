"""The hash chain: the stored-row verifier agrees with the generic one and catches the same edits."""

from __future__ import annotations

import pytest

from workflow.chain import GENESIS, ChainBroken, canonical, link_hash, verify_events, verify_stored


def _chain(n: int) -> list[dict]:
    events, prev = [], GENESIS
    for seq in range(1, n + 1):
        ev = {"seq": seq, "case_id": seq % 3 or None, "actor_id": 7, "actor": "张\"三", "at": f"2026-11-0{seq}",
              "event": "record_vote", "from_state": None, "to_state": "x" if seq % 2 else None,
              "payload": {"z": [1, "中文"], "a": {"reason": "理由\n第二行"}, "n": seq}, "prev_hash": prev}
        ev["hash"] = link_hash(ev)
        prev = ev["hash"]
        events.append(ev)
    return events


def _stored(events: list[dict]) -> list[tuple]:
    keys = ("seq", "case_id", "actor_id", "actor", "at", "event", "from_state", "to_state", "prev_hash", "hash")
    return [tuple(e[k] for k in keys) + (canonical(e["payload"]).decode(),) for e in events]


def test_the_stored_row_verifier_accepts_exactly_what_the_generic_one_accepts():
    events = _chain(5)
    head = {"seq": 5, "hash": events[-1]["hash"]}
    assert verify_events(events, head) == verify_stored(_stored(events), head) == 5


def test_a_payload_stored_as_non_canonical_text_counts_as_an_edit():
    rows = _stored(_chain(3))
    rows[1] = rows[1][:-1] + ('{"n": 2, "z": [1, "中文"], "a": {"reason": "理由\\n第二行"}}',)
    with pytest.raises(ChainBroken) as exc:
        verify_stored(rows)
    assert exc.value.seq == 2
