"""The fault grammar and the deterministic injector (no server)."""

from __future__ import annotations

from collections import Counter

import pytest

from esp_sandbox.faults import FaultInjector, FaultRule, FaultSpec, FaultSpecError

FULL = (
    "429=0.05,500=0.02,502=0.01,503=0.01,reset_before=0.01,reset_after=0.02,"
    "slow=0.02:1.5,timeout=0.01,partial=0.1"
)


def test_parse_full_example_and_round_trip() -> None:
    spec = FaultSpec.parse(FULL)
    assert [r.kind for r in spec.rules] == [
        "429",
        "500",
        "502",
        "503",
        "reset_before",
        "reset_after",
        "slow",
        "timeout",
        "partial",
    ]
    assert spec.rules[6] == FaultRule("slow", 0.02, 1.5)
    assert FaultSpec.parse(spec.render()) == spec


def test_route_scope_and_max_count() -> None:
    spec = FaultSpec.parse("reset_after@/api/events*=1#2, 503 = 0.5")
    rule = spec.rules[0]
    assert (rule.route, rule.max_count) == ("/api/events*", 2)
    injector = FaultInjector(spec, seed=1)
    kinds = [injector.decide("/api/events") for _ in range(3)]
    assert [k.kind if k else None for k in kinds[:2]] == ["reset_after", "reset_after"]
    assert kinds[2] is None or kinds[2].kind == "503"
    elsewhere = Counter(
        f.kind if f else None for f in (injector.decide("/3.0/x") for _ in range(200))
    )
    assert set(elsewhere) == {"503", None}


@pytest.mark.parametrize("bad", ["429", "429=2", "boom=0.1", "slow=0.1:x", "429=0.1#x"])
def test_bad_rules_are_rejected(bad: str) -> None:
    with pytest.raises(FaultSpecError):
        FaultSpec.parse(bad)


def test_empty_and_none() -> None:
    assert FaultSpec.parse(None).rules == ()
    assert FaultSpec.parse(" none ").rules == ()
    assert FaultInjector(None).decide("/api/events") is None


def test_same_seed_same_faults_and_rates_match() -> None:
    first = FaultInjector(FULL, seed=7)
    second = FaultInjector(FULL, seed=7)
    a = [first.decide("/api/events") for _ in range(4000)]
    b = [second.decide("/api/events") for _ in range(4000)]
    assert a == b
    counts = Counter(f.kind for f in a if f)
    assert 0.03 < counts["429"] / 4000 < 0.07
    assert "partial" not in counts
    reseeded = FaultInjector(FULL, seed=8)
    assert [reseeded.decide("/api/events") for _ in range(400)] != a[:400]


def test_partial_items_are_deterministic_and_sized() -> None:
    injector = FaultInjector("partial=1:0.25", seed=3)
    picked = injector.partial_items("/api/event-bulk-create-jobs", 40)
    assert len(picked) == 10 and picked == sorted(set(picked))
    again = FaultInjector("partial=1:0.25", seed=3).partial_items("/api/event-bulk-create-jobs", 40)
    assert picked == again
    assert FaultInjector("partial=1:0.001").partial_items("/x", 5) != []
    assert FaultInjector("429=1").partial_items("/x", 5) == []
    assert FaultInjector("partial=0").should_corrupt_items("/x") is False


def test_set_spec_restarts_sequence_and_counts_injections() -> None:
    injector = FaultInjector("500=1#1")
    assert injector.decide("/a") is not None
    assert injector.decide("/a") is None
    injector.set_spec("500=1#1")
    assert injector.decide("/a") is not None
    assert injector.injected() == {"500": 2}
