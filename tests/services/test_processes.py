"""``services.processes.settle_heap``, in a fresh interpreter: freezing the heap of the
test run itself would keep every later test's garbage."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from services.processes import settle_heap

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

kept = [Node() for _ in range(1000)]
before = cycle()  # garbage made while starting
settle_heap()
frozen = gc.get_freeze_count()
settle_heap()  # a second readiness (a rebalance) changes nothing
again = gc.get_freeze_count()
after = cycle()  # garbage made while serving
gc.collect()
print(json.dumps({
    "frozen": frozen, "again": again,
    "start_garbage_freed": before() is None,
    "later_garbage_freed": after() is None,
    "kept_frozen": frozen >= len(kept),
}))
"""


def test_settle_heap_freezes_once_what_the_start_made_and_frees_its_garbage() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    assert seen["frozen"] > 0 and seen["kept_frozen"]
    assert seen["again"] == seen["frozen"]
    # the start's garbage was collected first, not kept for good; and the collector
    # still frees what is made afterwards
    assert seen["start_garbage_freed"]
    assert seen["later_garbage_freed"]
