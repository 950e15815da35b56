"""A peer's suite: AWSGuard's failing fixtures (pulumi/pulumi-policy-aws) for the resource types
the program uses, translated to our types (``tests/fixtures/awsguard-peer-suite.yaml``, with
their sources), each reported by the pack's policy covering the same concern, or shown not to
be reported where the data says why the concern does not apply here.

The fixtures run through the validators as ``tests/test_policies.py`` runs its own, under its
production configuration (so production-only rules apply).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.rules import ALL_POLICIES
from tests.test_policies import DROP, R, patched, reporting

SUITE = Path(__file__).parent / "fixtures" / "awsguard-peer-suite.yaml"
DATA: dict[str, Any] = yaml.safe_load(SUITE.read_text())
CASES: list[dict[str, Any]] = DATA["cases"]


def _subject(case: dict[str, Any]) -> R | list[R]:
    if "stack" in case:
        return [
            R(r["type"], dict(r["props"]), r["name"], dict(r.get("deps", {})))
            for r in case["stack"]
        ]
    base = DATA["bases"][case["base"]]
    changes: dict[str, Any] = dict(case.get("set", {}))
    changes.update({path: DROP for path in case.get("drop", [])})
    return R(base["type"], patched(base["props"], changes))


def _id(case: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", case["source"]["test"].lower()).strip("-")[:80]


def test_the_suite_names_its_sources() -> None:
    assert DATA["repository"] == "pulumi/pulumi-policy-aws"
    for case in CASES:
        source = case["source"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
        assert source["path"].endswith(".ts") and source["test"], source
        assert ("policies" in case) != ("not_applicable" in case), source
    print(f"\nAWSGuard peer suite: {len(CASES)} failing fixtures, ", end="")
    print(f"{sum('policies' in c for c in CASES)} reported by their policies, ", end="")
    print(f"{sum('not_applicable' in c for c in CASES)} not applicable (with reasons)")


def test_every_base_passes_the_whole_pack() -> None:
    for name, base in DATA["bases"].items():
        assert reporting(R(base["type"], dict(base["props"]))) == set(), name


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_awsguard_failing_fixture(case: dict[str, Any]) -> None:
    known = {p.name for p in ALL_POLICIES}
    reported = reporting(_subject(case))
    if "policies" in case:
        assert set(case["policies"]) <= known, case["policies"]
        assert reported == set(case["policies"]), case["source"]["test"]
    else:
        assert len(case["not_applicable"].strip()) > 40
        assert reported == set(), f"now reported by {reported}: the note no longer holds"
