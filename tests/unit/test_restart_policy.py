"""The restart policy: per-actor backoff, the node's restart intensity limit, giving up."""

from __future__ import annotations

import pytest

from runtime.restart_policy import GiveUp, RestartActor, RestartAll, RestartPolicy

pytestmark = pytest.mark.timeout(10)


def policy(**kw) -> RestartPolicy:
    args = {"max_restarts": 5, "window_s": 30.0, "backoff_s": 0.1, "backoff_max_s": 1.0} | kw
    return RestartPolicy(**args)


def test_first_restart_of_an_actor_waits_the_base_backoff():
    assert policy().on_exit("session", 100.0) == RestartActor("session", 0.1)


def test_backoff_doubles_with_each_recent_restart_of_that_actor_and_is_capped():
    p = policy(max_restarts=100)
    delays = [p.on_exit("log", 100.0 + i).delay_s for i in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_is_per_actor():
    p = policy()
    assert p.on_exit("log", 1.0).delay_s == 0.1
    assert p.on_exit("log", 2.0).delay_s == 0.2
    assert p.on_exit("leader", 3.0) == RestartActor("leader", 0.1)


def test_restarts_older_than_the_window_are_forgotten():
    p = policy(window_s=10.0)
    assert p.on_exit("log", 0.0).delay_s == 0.1
    assert p.on_exit("log", 5.0).delay_s == 0.2
    assert p.on_exit("log", 16.0).delay_s == 0.1  # the restart at 0.0 and 5.0 left the window
    assert p.recent_restarts("log") == 1


def test_more_than_max_restarts_of_any_actors_in_the_window_restarts_the_node():
    p = policy(max_restarts=3)
    assert isinstance(p.on_exit("log", 1.0), RestartActor)
    assert isinstance(p.on_exit("leader", 2.0), RestartActor)
    assert isinstance(p.on_exit("session", 3.0), RestartActor)
    decision = p.on_exit("log", 4.0)
    assert isinstance(decision, RestartAll)
    assert decision.delay_s == 0.1
    assert "log" in decision.reason


def test_restarts_spread_wider_than_the_window_never_reach_the_limit():
    p = policy(max_restarts=2, window_s=10.0, stable_s=10.0)
    for i in range(20):
        assert isinstance(p.on_exit("session", i * 6.0), RestartActor)


def test_max_restarts_zero_restarts_the_node_at_the_first_exit():
    assert isinstance(policy(max_restarts=0).on_exit("log", 1.0), RestartAll)


def test_reset_after_a_node_restart_clears_the_history():
    p = policy(max_restarts=1)
    p.on_exit("log", 1.0)
    assert isinstance(p.on_exit("log", 2.0), RestartAll)
    p.reset()
    assert p.recent_restarts() == 0
    assert p.on_exit("log", 3.0) == RestartActor("log", 0.1)


def test_gives_up_after_node_restarts_fail_three_times_in_a_row():
    p = policy(max_restarts=1, window_s=10.0, max_node_restarts=3)
    now = 0.0
    decisions = []
    for _ in range(4):
        now += 1.0
        assert isinstance(p.on_exit("session", now), RestartActor)
        now += 1.0
        decision = p.on_exit("session", now)
        decisions.append(decision)
        if isinstance(decision, RestartAll):
            p.reset()
    assert [type(d) for d in decisions] == [RestartAll, RestartAll, RestartAll, GiveUp]
    assert "3 node restarts" in decisions[-1].reason


def test_node_restart_backoff_doubles_while_node_restarts_keep_failing():
    p = policy(max_restarts=0, window_s=10.0, backoff_s=0.5, backoff_max_s=1.5, max_node_restarts=5)
    delays = []
    for i in range(4):
        decision = p.on_exit("log", float(i))
        assert isinstance(decision, RestartAll)
        delays.append(decision.delay_s)
        p.reset()
    assert delays == [0.5, 1.0, 1.5, 1.5]


def test_a_node_that_stayed_up_long_enough_starts_counting_failures_afresh():
    p = policy(max_restarts=0, window_s=10.0, max_node_restarts=2)
    assert isinstance(p.on_exit("log", 0.0), RestartAll)
    p.reset()
    assert isinstance(p.on_exit("log", 1.0), RestartAll)  # failed node restart #1
    p.reset()
    assert isinstance(p.on_exit("log", 100.0), RestartAll)  # stable for 99 s: not a failure
    assert p.failed_node_restarts == 0
    p.reset()
    assert isinstance(p.on_exit("log", 101.0), RestartAll)
    p.reset()
    assert isinstance(p.on_exit("log", 102.0), GiveUp)


@pytest.mark.parametrize(
    "kw",
    [{"max_restarts": -1}, {"window_s": 0.0}, {"backoff_s": -0.1}, {"backoff_s": 2.0, "backoff_max_s": 1.0}],
)
def test_nonsense_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        policy(**kw)
