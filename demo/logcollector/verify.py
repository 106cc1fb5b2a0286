"""The end-of-run check: every source's log file against the sink's output file for it.

- produced: lines in the source's log file (numbered 1..n without a gap, or the run is broken);
- collected: distinct source lines found, byte for byte, in the sink's file;
- lost: source lines missing from the sink's file;
- duplicates: sink lines beyond the first with the same line number;
- unexpected: sink lines that are no line of the source (damaged or foreign);
- in_order: the sink's lines are in line-number order.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from demo.logcollector.common import line_number


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return text.splitlines(keepends=True)


def check_source(log_file: Path, sink_file: Path) -> dict[str, Any]:
    produced = [x for x in _lines(log_file) if x.endswith("\n")]
    numbered_ok = all(line_number(x) == i for i, x in enumerate(produced, start=1))
    output = _lines(sink_file)
    wanted = set(produced)
    present = set(output)
    numbers = []
    for line in output:
        try:
            numbers.append(line_number(line))
        except ValueError:
            numbers.append(-1)
    counts = Counter(numbers)
    return {
        "produced": len(produced),
        "collected": len(wanted & present),
        "lost": len(wanted - present),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected": sum(1 for line in output if line not in wanted),
        "in_order": numbers == sorted(numbers),
        "source_numbered_ok": numbered_ok,
    }


def check(sources: list[str], logs_dir: Path, sink_dir: Path) -> dict[str, dict[str, Any]]:
    return {src: check_source(logs_dir / f"{src}.log", sink_dir / f"{src}.log") for src in sources}
