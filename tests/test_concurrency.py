"""One writer and two readers on one index: every open sees one whole version (eval/stress_index.py).

Runs for $RAG_STRESS_SECONDS (20 s by default, so CI stays quick; docs/benchmarks.md has the 60 s run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readers_never_see_a_mixed_or_missing_version_while_a_writer_swaps() -> None:
    seconds = float(os.environ.get("RAG_STRESS_SECONDS", "20"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "stress_index.py"), "--seconds", str(seconds), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 400,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result = json.loads(proc.stdout.splitlines()[-1])
    print(
        f"\n{seconds:.0f} s: {result['opens']} opens, {result['swaps']} swaps, {result['mixed']} mixed, "
        f"{result['failed_opens']} failed opens, {result['failed_writes']} failed writes"
    )
    assert (result["mixed"], result["failed_opens"], result["failed_writes"]) == (0, 0, 0), result["errors"]
    assert result["swaps"] >= 3 and result["opens"] >= 20  # the race really ran
    assert max(result["versions_seen"]) >= 2 and result["versions_left"] == 1
