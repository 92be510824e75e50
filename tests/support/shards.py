"""`PICHUB_TEST_SHARD=i/n` (1 ≤ i ≤ n): run only the i-th of n shares of the selected tests.

`scripts/test` runs the scale pass as n pytest processes at once, each with its own
PostgreSQL cluster and SeaweedFS: those tests mostly wait on the two servers, so the
processes overlap well even on two cores. A module stays whole (its module-scoped
fixtures start once); modules go to the share with the least work so far, largest first.
A module's work is its number of tests times its `SHARD_WEIGHT` (1 unless it says: one
test of tests/test_scale_out.py, which starts servers, costs as much as ~20 others).
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest


def _share(spec: str) -> tuple[int, int]:
    index, _, count = spec.partition("/")
    share, shares = int(index), int(count)
    if not 1 <= share <= shares:
        raise pytest.UsageError(f"PICHUB_TEST_SHARD={spec!r}: want i/n with 1 <= i <= n")
    return share - 1, shares


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    spec = os.environ.get("PICHUB_TEST_SHARD")
    if not spec:
        return
    mine, shares = _share(spec)
    by_module: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_module[str(item.path)].append(item)
    work = {module: len(tests) * getattr(getattr(tests[0], "module", None), "SHARD_WEIGHT", 1)
            for module, tests in by_module.items()}
    loads = [0] * shares
    chosen: set[str] = set()
    for module in sorted(by_module, key=lambda m: (-work[m], m)):
        lightest = loads.index(min(loads))
        loads[lightest] += work[module]
        if lightest == mine:
            chosen.add(module)
    config.hook.pytest_deselected(items=[i for i in items if str(i.path) not in chosen])
    items[:] = [i for i in items if str(i.path) in chosen]
