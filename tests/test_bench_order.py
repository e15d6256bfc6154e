"""The benchmarks' round order is balanced: no variant keeps the same neighbour ahead of it.

A benchmark's figures are differences between variants run in the same round, so an order
that always runs one variant right after another hands the second a warm start every time
(bench/README.md, "a fifth pass"). `round_order` is a Williams design; these tests pin the two
properties the benchmarks rely on.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

_COMMON = Path(__file__).resolve().parent.parent / "bench" / "_common.py"


def _round_order() -> Any:
    spec = importlib.util.spec_from_file_location("bench_common_under_test", _COMMON)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module.round_order


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 7])
def test_each_variant_runs_first_and_follows_each_other_equally_often(count: int) -> None:
    round_order = _round_order()
    variants = [f"v{i}" for i in range(count)]
    cycle = count if count % 2 == 0 else 2 * count
    firsts: collections.Counter[str] = collections.Counter()
    follows: collections.Counter[tuple[str, str]] = collections.Counter()
    # Warm-up rounds are numbered below zero: those cycles must be balanced too.
    for round_number in range(-cycle, 2 * cycle):
        order = round_order(variants, round_number)
        assert sorted(order) == variants
        firsts[order[0]] += 1
        follows.update(itertools.pairwise(order))
    assert set(firsts) == set(variants)
    assert len(set(firsts.values())) == 1
    if count > 1:
        assert len(follows) == count * (count - 1)  # every ordered pair occurs ...
        assert len(set(follows.values())) == 1  # ... equally often
