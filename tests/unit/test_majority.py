"""Quorum arithmetic (actors/protocol/majority.py): strict majorities of the voters only."""

from __future__ import annotations

import pytest

from actors.protocol import majority

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("voters", "size"), [({1}, 1), ({1, 2}, 2), ({1, 2, 3}, 2), ({1, 2, 3, 4}, 3), ({1, 2, 3, 4, 5}, 3)]
)
def test_a_quorum_is_a_strict_majority(voters, size):
    assert majority.size(voters) == size


def test_only_voters_count_and_duplicates_do_not():
    voters = {1, 2, 3}
    assert majority.reached({1, 2}, voters)
    assert not majority.reached({1, 4, 5, 6}, voters)  # 4..6: observers or strangers
    assert not majority.reached([1, 1, 1], voters)


def test_the_commit_point_is_what_a_quorum_has():
    voters = {1, 2, 3, 4, 5}
    assert majority.committed_point({1: 9, 2: 7, 3: 5, 4: 3}, voters) == 5
    assert majority.committed_point({1: 9, 6: 100, 7: 100}, voters) == 0  # non-voters never count
