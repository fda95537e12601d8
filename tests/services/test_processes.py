"""``services.processes``: ``settle_heap``, in a fresh interpreter (freezing the heap of
the test run itself would keep every later test's garbage); a stack's hold on its home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.demo import run as demo_run
from services.processes import HomeInUse, hold_home
from services.settings import Settings

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


HOLDER = """
import sys
from pathlib import Path
from services.processes import hold_home

held = hold_home(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_a_home_is_held_by_one_stack_until_its_process_dies(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(HomeInUse, match=f"pid {holder.pid}"):
            hold_home(home)
        # ``dsr demo`` starts from a fresh home: not while a demo runs in it
        with pytest.raises(HomeInUse):
            demo_run.prepare(Settings(home=tmp_path))
        assert (home / "run" / "stack.lock").exists()
        # nor does ``dsr demo seed`` write its sample systems under a running stack
        with pytest.raises(HomeInUse):
            demo_run.install(Settings(home=home))
        assert not (home / "crm.db").exists()
    finally:
        holder.kill()  # SIGKILL: the process lets go of nothing itself
        holder.wait()
    hold_home(home).close()
