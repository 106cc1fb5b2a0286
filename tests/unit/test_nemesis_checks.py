"""The nemesis's checks (bench/nemesis/checks.py) on small made-up histories: each must fail on
the anomaly it exists for."""

from __future__ import annotations

import pytest

from bench.nemesis import checks

pytestmark = pytest.mark.timeout(30)


def rec(w, f, t0, t1, r="ok", c=0, **extra):
    return {"w": w, "f": f, "t0": t0, "t1": t1 if r != "info" else None, "r": r, "c": c, **extra}


def node(**kw):
    return {"seq": [], "queue": {}, "eph": [], "fence": "0", "reg": {}, **kw}


def test_register_passes_a_linearizable_history_and_fails_a_stale_read():
    good = [rec("register", "set", 0, 1, k="/r", v="a"), rec("register", "get", 2, 3, k="/r", out=["a", 1])]
    assert checks.register(good)["ok"] is True
    stale = [*good, rec("register", "get", 4, 5, c=1, k="/r", out=["0", 0])]
    assert checks.register(stale)["ok"] is False


def test_sequential_counts_an_acknowledged_name_missing_on_any_node_as_lost():
    hist = [
        rec("seq", "create", 0, 1, v="0-1", path="/seq/s-0000000001"),
        rec("seq", "create", 1, 2, v="0-2", path="/seq/s-0000000002"),
    ]
    full = node(seq=["s-0000000001", "s-0000000002"])
    assert checks.sequential(hist, {"a": full, "b": full})["ok"] is True
    result = checks.sequential(hist, {"a": full, "b": node(seq=["s-0000000001"])})
    assert result["ok"] is False and result["lost"] == 1 and result["replicas_agree"] is False


def test_sequential_allows_one_extra_name_per_indeterminate_create_and_no_more():
    hist = [rec("seq", "create", 0, None, r="info", v="0-1")]
    assert checks.sequential(hist, {"a": node(seq=["s-0000000001"])})["ok"] is True
    assert checks.sequential(hist, {"a": node(seq=["s-0000000001", "s-0000000002"])})["ok"] is False


def test_queue_finds_loss_double_consumption_and_made_up_items():
    puts = [rec("queue", "put", 0, 1, v="0-1"), rec("queue", "put", 1, 2, v="0-2")]
    take = rec("queue", "take", 3, 4, c=1, v="0-1")
    assert checks.queue([*puts, take], {"a": node(queue={"q-2": "0-2"})})["ok"] is True
    lost = checks.queue([*puts, take], {"a": node()})
    assert lost["ok"] is False and lost["lost"] == 1
    twice = checks.queue([*puts, take, rec("queue", "take", 5, 6, c=2, v="0-1")], {"a": node(queue={"q-2": "0-2"})})
    assert twice["ok"] is False and twice["consumed_twice"] == 1
    assert checks.queue(puts, {"a": node(queue={"q-1": "0-1", "q-2": "0-2", "q-3": "x"})})["made_up"] == 1


def test_lock_fencing_tokens_must_rise_with_the_fence_version():
    ok = [rec("lock", "fence", 0, 1, token=3, version=1), rec("lock", "fence", 2, 3, c=1, token=5, version=2)]
    assert checks.lock(ok)["ok"] is True
    backwards = [rec("lock", "fence", 0, 1, token=5, version=1), rec("lock", "fence", 2, 3, c=1, token=3, version=2)]
    assert checks.lock(backwards)["ok"] is False
    same_version = [rec("lock", "fence", 0, 1, token=3, version=1), rec("lock", "fence", 2, 3, c=1, token=5, version=1)]
    assert checks.lock(same_version)["ok"] is False


def test_an_ephemeral_missing_while_its_session_lives_or_left_after_close_fails():
    created = rec("eph", "create", 0, 1, path="/eph/0-1", sid=7)
    assert checks.ephemerals([created, rec("eph", "check", 1, 2, path="/eph/0-1", sid=7, exists=True)], {"a": node()})[
        "ok"
    ]
    vanished = checks.ephemerals(
        [created, rec("eph", "check", 1, 2, path="/eph/0-1", sid=7, exists=False)], {"a": node()}
    )
    assert vanished["ok"] is False and vanished["vanished_while_alive"] == 1
    assert checks.ephemerals([created], {"a": node(eph=["0-1"])})["ok"] is False


def test_availability_is_the_longest_stretch_without_an_acknowledged_write_overlapping_the_fault():
    writes = [rec("seq", "create", t - 0.01, t, v=str(t), path=f"/seq/s-{t}") for t in (1.0, 2.0, 2.5, 6.0, 6.2, 9.0)]
    faults = [{"kind": "kill-leader", "start": 3.0, "end": 5.0}, {"kind": "loss", "start": 7.0, "end": 8.0}]
    result = checks.availability(writes, faults, end=10.0)
    assert [f["outage"] for f in result["faults"]] == [3.0, 2.0]  # 3.0 -> 6.0; 7.0 -> 9.0
    assert result["kinds"]["kill-leader"] == {"count": 1, "max_outage": 3.0, "median_outage": 3.0}
