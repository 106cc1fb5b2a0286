"""Every module of tests/integration and tests/faults carries its marker, so that `-m "not faults"`
and `-m integration` select what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)
TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", ["integration", "faults"])
def test_each_module_is_marked(folder):
    unmarked = [
        p.name for p in sorted((TESTS / folder).glob("test_*.py")) if f"pytest.mark.{folder}" not in p.read_text()
    ]
    assert not unmarked, f"tests/{folder} modules without pytest.mark.{folder}: {unmarked}"
