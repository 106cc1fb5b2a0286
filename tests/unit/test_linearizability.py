"""The linearizability checker used by the consistency tests: hand-made histories and random ones."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from bench.linearizability import CheckLimitExceeded, Op, check, describe_op

pytestmark = pytest.mark.timeout(60)

K = "/k"
INIT = {K: (b"0", 0)}


def get(call: float, ret: float | None, value: bytes | None, version: int, *, client: int = 0, key: str = K) -> Op:
    return Op(client, key, "get", None, None, call, ret, True, (value, version) if ret is not None else None)


def set_(call: float, ret: float | None, value: bytes, *, ok: bool = True, client: int = 0, key: str = K) -> Op:
    return Op(client, key, "set", value, None, call, ret, ok, None)


def cas(
    call: float, ret: float | None, expect: int, value: bytes, *, ok: bool = True, client: int = 0, key: str = K
) -> Op:
    return Op(client, key, "cas", value, expect, call, ret, ok, None)


def linearizable(history: list[Op], initial: dict | None = None, **kw) -> bool:
    ok, why = check(history, INIT if initial is None else initial, **kw)
    assert ok == (why == "")
    return ok


# --- plain registers -------------------------------------------------------------------------------


def test_empty_history_is_linearizable():
    assert check([]) == (True, "")


def test_sequential_history():
    history = [
        get(0, 1, b"0", 0),
        set_(2, 3, b"a"),
        get(4, 5, b"a", 1),
        set_(6, 7, b"b", client=1),
        get(8, 9, b"b", 2, client=2),
        cas(10, 11, 2, b"c"),
        get(12, 13, b"c", 3),
    ]
    assert linearizable(history)


def test_sequential_history_with_a_wrong_read_is_rejected():
    history = [set_(0, 1, b"a"), get(2, 3, b"a", 2)]  # right value, wrong version
    assert not linearizable(history)


@pytest.mark.parametrize("seen", [(b"a", 2), (b"b", 2)])
def test_overlapping_sets_then_a_read_of_either_last_writer(seen):
    history = [set_(0, 10, b"a", client=1), set_(1, 9, b"b", client=2), get(11, 12, *seen)]
    assert linearizable(history)


@pytest.mark.parametrize("seen", [(b"0", 0), (b"a", 1), (b"b", 1), (b"a", 2), (b"b", 2)])
def test_a_read_concurrent_with_two_sets_may_see_any_intermediate_state(seen):
    history = [set_(0, 10, b"a", client=1), set_(0, 10, b"b", client=2), get(1, 9, *seen)]
    assert linearizable(history)


def test_after_overlapping_sets_the_version_counts_both():
    history = [set_(0, 10, b"a", client=1), set_(1, 9, b"b", client=2), get(11, 12, b"a", 1)]
    assert not linearizable(history)


def test_stale_read_after_a_completed_write_is_rejected():
    history = [set_(0, 1, b"new"), get(2, 3, b"0", 0, client=1)]
    ok, why = check(history, INIT)
    assert not ok
    assert repr(K) in why and "get" in why


def test_reads_must_not_go_back_in_time():
    history = [set_(0, 10, b"a"), get(1, 2, b"a", 1, client=1), get(3, 4, b"0", 0, client=2)]
    assert not linearizable(history)


def test_lost_acknowledged_write_is_rejected():
    history = [
        set_(0, 1, b"a"),
        get(2, 3, b"a", 1, client=1),
        set_(4, 5, b"b"),  # acknowledged ...
        get(6, 7, b"a", 1, client=1),  # ... but every later read still sees the old value
        get(8, 9, b"a", 1, client=2),
    ]
    ok, why = check(history, INIT)
    assert not ok
    assert "set(b'b')" in why or "get -> (b'a', v1)" in why


def test_write_acknowledged_during_a_read_may_or_may_not_be_seen():
    for seen in [(b"0", 0), (b"a", 1)]:
        assert linearizable([get(0, 10, *seen, client=1), set_(2, 5, b"a")])


def test_operations_touching_at_an_instant_count_as_concurrent():
    assert linearizable([set_(0, 5, b"a"), get(5, 6, b"0", 0, client=1)])
    assert not linearizable([set_(0, 5, b"a"), get(5.001, 6, b"0", 0, client=1)])


def test_default_initial_state_is_no_node():
    assert check([get(0, 1, None, -1)]) == (True, "")
    assert not check([get(0, 1, b"0", 0)])[0]
    assert check([get(0, 1, b"x", 3)], {K: (b"x", 3)}) == (True, "")


def test_failed_and_unanswered_reads_are_ignored():
    failed = Op(0, K, "get", None, None, 0, 1, False, None)
    unanswered = Op(0, K, "get", None, None, 0, None, True, None)
    assert linearizable([set_(0, 1, b"a"), failed, unanswered, get(2, 3, b"a", 1)])


def test_a_definitely_failed_set_has_no_effect():
    assert linearizable([set_(0, 1, b"a", ok=False), get(2, 3, b"0", 0)])
    assert not linearizable([set_(0, 1, b"a", ok=False), get(2, 3, b"a", 1)])


# --- compare-and-set -------------------------------------------------------------------------------


def test_cas_succeeds_on_the_current_version():
    assert linearizable([cas(0, 1, 0, b"a"), cas(2, 3, 1, b"b"), get(4, 5, b"b", 2)])


def test_cas_reported_successful_on_a_stale_version_is_rejected():
    assert not linearizable([set_(0, 1, b"a"), cas(2, 3, 0, b"b"), get(4, 5, b"b", 2)])


def test_cas_fails_on_a_stale_version():
    assert linearizable([set_(0, 1, b"a"), cas(2, 3, 0, b"b", ok=False), get(4, 5, b"a", 1)])


def test_failed_cas_when_the_version_matched_at_every_possible_point_is_rejected():
    ok, why = check([get(0, 1, b"0", 0), cas(2, 3, 0, b"b", ok=False), get(4, 5, b"0", 0)], INIT)
    assert not ok
    assert "cas(v0 -> b'b') failed" in why


def test_failed_cas_is_fine_when_a_concurrent_set_bumped_the_version():
    history = [cas(0, 10, 0, b"c", ok=False, client=1), set_(2, 4, b"s", client=2), get(11, 12, b"s", 1)]
    assert linearizable(history)


def test_failed_cas_must_come_after_the_version_bump_it_depends_on():
    # The set that bumped the version starts only after the cas has already failed.
    history = [cas(0, 1, 0, b"c", ok=False, client=1), set_(2, 4, b"s", client=2), get(5, 6, b"s", 1)]
    assert not linearizable(history)


def test_two_concurrent_cas_on_the_same_version_one_wins():
    history = [
        cas(0, 10, 0, b"x", client=1),
        cas(1, 9, 0, b"y", ok=False, client=2),
        get(11, 12, b"x", 1),
    ]
    assert linearizable(history)
    both_won = [cas(0, 10, 0, b"x", client=1), cas(1, 9, 0, b"y", client=2)]
    assert not linearizable(both_won)


def test_cas_with_version_minus_one_is_unconditional():
    assert linearizable([set_(0, 1, b"a"), cas(2, 3, -1, b"b"), get(4, 5, b"b", 2)])


# --- unknown outcomes ------------------------------------------------------------------------------


def test_unanswered_set_that_took_effect():
    assert linearizable([set_(0, None, b"a", client=1), get(5, 6, b"a", 1, client=2)])


def test_unanswered_set_that_never_took_effect():
    assert linearizable([set_(0, None, b"a", client=1), get(5, 6, b"0", 0, client=2)])


def test_unanswered_set_may_take_effect_long_after_its_call():
    history = [
        set_(0, None, b"late", client=1),
        get(1, 2, b"0", 0, client=2),
        set_(3, 4, b"b", client=2),
        get(5, 6, b"b", 1, client=2),
        get(7, 8, b"late", 2, client=3),
    ]
    assert linearizable(history)


def test_unanswered_set_cannot_take_effect_before_its_call():
    history = [get(0, 1, b"a", 1, client=2), set_(2, None, b"a", client=1)]
    ok, why = check(history, INIT)
    assert not ok
    assert "get -> (b'a', v1)" in why


def test_unanswered_set_cannot_be_seen_and_then_unseen():
    history = [set_(0, None, b"a", client=1), get(5, 6, b"a", 1, client=2), get(7, 8, b"0", 0, client=2)]
    assert not linearizable(history)


def test_unanswered_cas_obeys_the_version_rule():
    took_effect = [cas(0, None, 0, b"c", client=1), get(5, 6, b"c", 1)]
    assert linearizable(took_effect)
    lost = [cas(0, None, 0, b"c", client=1), get(5, 6, b"0", 0)]
    assert linearizable(lost)
    wrong_version = [set_(0, 1, b"a"), cas(2, None, 0, b"c", client=1), get(5, 6, b"c", 2)]
    assert not linearizable(wrong_version)


def test_only_unanswered_ops_is_linearizable():
    assert linearizable([set_(0, None, b"a"), cas(1, None, 7, b"b"), set_(2, None, b"c", ok=False)])


# --- several keys ----------------------------------------------------------------------------------


def test_keys_are_independent():
    a, b = "/a", "/b"
    initial = {a: (b"0", 0), b: (b"0", 0)}
    history = [
        set_(0, 1, b"a1", key=a),
        get(2, 3, b"0", 0, key=b),  # b is untouched by the write on a
        set_(4, 5, b"b1", key=b, client=1),
        get(6, 7, b"a1", 1, key=a, client=1),
        get(6, 7, b"b1", 1, key=b, client=2),
    ]
    assert check(history, initial) == (True, "")


def test_the_explanation_names_the_bad_key():
    a, b = "/a", "/b"
    initial = {a: (b"0", 0), b: (b"0", 0)}
    history = [
        set_(0, 1, b"a1", key=a),
        get(2, 3, b"a1", 1, key=a),
        set_(0, 1, b"b1", key=b),
        get(2, 3, b"0", 0, key=b),
    ]
    ok, why = check(history, initial)
    assert not ok
    assert repr(b) in why and repr(a) not in why


# --- limits, validation, formatting ----------------------------------------------------------------


def _wide_history(n: int) -> list[Op]:
    """`n` mutually concurrent sets and a read of one of them: many interleavings to consider."""
    history = [set_(0, 100, f"v{i}".encode(), client=i) for i in range(n)]
    return [*history, get(101, 102, b"v0", n, client=n)]


def test_search_limit_raises():
    history = _wide_history(8)
    assert linearizable(history)
    with pytest.raises(CheckLimitExceeded, match="search limit exceeded"):
        check(history, INIT, max_states=5)


def test_search_limit_is_not_hit_by_a_long_sequential_history():
    history: list[Op] = []
    for i in range(1, 3001):
        history.append(set_(4 * i, 4 * i + 1, b"%d" % i))
        history.append(get(4 * i + 2, 4 * i + 3, b"%d" % i, i, client=1))
    assert linearizable(history, max_states=6001)


def test_long_history_with_many_unknown_outcomes():
    history: list[Op] = []
    for i in range(1, 1001):
        history.append(set_(4 * i, 4 * i + 1, b"%d" % i))
        history.append(set_(4 * i, None, b"lost", client=2))
        history.append(get(4 * i + 2, 4 * i + 3, b"%d" % i, i, client=1))
    started = time.perf_counter()
    assert linearizable(history)  # none of the lost writes took effect: they would bump the version
    assert time.perf_counter() - started < 5
    history.append(get(5000, 5001, b"lost", 1001, client=1))  # ... until the very end
    assert linearizable(history)


@pytest.mark.parametrize(
    "op",
    [
        Op(0, K, "delete", None, None, 0, 1, True, None),
        Op(0, K, "set", b"a", None, 2, 1, True, None),
        Op(0, K, "cas", b"a", None, 0, 1, True, None),
        Op(0, K, "get", None, None, 0, 1, True, None),
    ],
)
def test_malformed_ops_are_refused(op):
    with pytest.raises(ValueError):
        check([op], INIT)


def test_describe_op():
    assert describe_op(cas(1, 2.5, 3, b"x", ok=False, client=2), 4) == "#4 client 2 cas(v3 -> b'x') failed [1, 2.5]"
    assert describe_op(set_(1, None, b"y")) == "client 0 set(b'y') unknown [1, ...)"
    assert describe_op(get(0, 1, b"z", 7)) == "client 0 get -> (b'z', v7) [0, 1]"


# --- random histories from a real register ---------------------------------------------------------


def simulate_clients(
    rng: random.Random, n_clients: int, ops_per_client: int, keys: list[str], p_unknown: float = 0.03
) -> list[Op]:
    """Clients issuing one op at a time against a real atomic register, with random scheduling.

    Each op is invoked, applied atomically at some later step and answered at a later step still. An
    op may lose its response (ret None): the client moves on, and the op is applied later or never.
    """
    state = {k: (b"0", 0) for k in keys}
    left = dict.fromkeys(range(n_clients), ops_per_client)
    busy: dict[int, dict] = {}  # client -> in-flight op awaiting apply / response
    floating: list[dict] = []  # unanswered ops that may still be applied
    history: list[Op] = []
    now = 0.0
    counter = 0

    def apply(op: dict) -> None:
        key, (value, version) = op["key"], state[op["key"]]
        if op["kind"] == "get":
            op["out"], op["ok"] = (value, version), True
        elif op["kind"] == "set" or version == op["expect"]:
            state[key], op["ok"] = (op["arg"], version + 1), True
        else:
            op["ok"] = False
        op["applied"] = True

    def record(op: dict, ret: float | None) -> None:
        out = op.get("out") if ret is not None else None
        history.append(Op(op["client"], op["key"], op["kind"], op["arg"], op["expect"], op["call"], ret, op["ok"], out))

    while any(left.values()) or busy or floating:
        now += rng.random()
        actions = [("invoke", c) for c, n in left.items() if n and c not in busy]
        actions += [("step", c) for c in busy]
        actions += [("float", i) for i in range(len(floating))]
        action, who = rng.choice(actions)
        if action == "invoke":
            left[who] -= 1
            counter += 1
            key = rng.choice(keys)
            kind = rng.choice(["get", "get", "set", "cas"])
            expect = None
            if kind == "cas":
                expect = state[key][1] - rng.choice([0, 0, 0, 1])
            arg = None if kind == "get" else f"c{who}-{counter}".encode()
            busy[who] = {
                "client": who, "key": key, "kind": kind, "arg": arg, "expect": expect,
                "call": now, "applied": False, "ok": True,
            }  # fmt: skip
        elif action == "step":
            op = busy[who]
            if rng.random() < p_unknown:  # response lost: it may still happen, later or never
                del busy[who]
                record(op, None)
                if not op["applied"] and op["kind"] != "get" and rng.random() < 0.5:
                    floating.append(op)
            elif not op["applied"]:
                apply(op)
            else:
                del busy[who]
                record(op, now)
        else:
            apply(floating.pop(who))
    return history


def simulate_widened(rng: random.Random, n_ops: int, keys: list[str], width: float) -> list[Op]:
    """A sequential execution at times 1, 2, 3, ... with each op's interval widened randomly around it."""
    state = {k: (b"0", 0) for k in keys}
    history = []
    for t in range(1, n_ops + 1):
        key = rng.choice(keys)
        kind = rng.choice(["get", "set", "cas"])
        call, ret = t - rng.uniform(0, width), t + rng.uniform(0, width)
        value, version = state[key]
        if kind == "get":
            history.append(Op(t % 7, key, kind, None, None, call, ret, True, (value, version)))
            continue
        arg = b"w%d" % t
        expect = version - rng.choice([0, 0, 1]) if kind == "cas" else None
        ok = kind == "set" or expect == version
        if ok:
            state[key] = (arg, version + 1)
        history.append(Op(t % 7, key, kind, arg, expect, call, ret, ok, None))
    return history


def _initial(history: list[Op]) -> dict:
    return {op.key: (b"0", 0) for op in history}


def _mutations(rng: random.Random, history: list[Op]) -> list[list[Op]]:
    """Histories made impossible by changing what one read observed."""
    reads = [i for i, op in enumerate(history) if op.kind == "get" and op.ret is not None and op.ok]
    out = []
    for i in rng.sample(reads, min(3, len(reads))):
        bad = list(history)
        bad[i] = Op(**{**history[i].__dict__, "out": (b"never-written", history[i].out[1])})
        out.append(bad)
    # A read of the initial state after an acknowledged write on its key strictly before it.
    for i in reads:
        r = history[i]
        if any(w.key == r.key and w.kind != "get" and w.ok and w.ret is not None and w.ret < r.call for w in history):
            bad = list(history)
            bad[i] = Op(**{**r.__dict__, "out": (b"0", 0)})
            out.append(bad)
            break
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_client_histories_are_linearizable_and_mutations_are_not(seed):
    rng = random.Random(seed)
    history = simulate_clients(rng, n_clients=rng.randint(2, 6), ops_per_client=rng.randint(5, 40), keys=["/a", "/b"])
    ok, why = check(history, _initial(history))
    assert ok, why
    mutations = _mutations(rng, history)
    assert mutations
    for bad in mutations:
        ok, why = check(bad, _initial(bad))
        assert not ok
        assert why.startswith("key ")


@pytest.mark.parametrize("seed", range(40))
def test_random_widened_histories_are_linearizable_and_mutations_are_not(seed):
    rng = random.Random(1000 + seed)
    history = simulate_widened(rng, n_ops=rng.randint(20, 150), keys=["/a", "/b", "/c"], width=rng.uniform(0.5, 4))
    ok, why = check(history, _initial(history))
    assert ok, why
    for bad in _mutations(rng, history):
        assert not check(bad, _initial(bad))[0]


def brute_force(history: list[Op], init: tuple[bytes | None, int]) -> bool:
    """Try every order of every admissible subset of a one-key history: the rules, spelled out slowly."""
    inf = float("inf")
    # Answered successes and definite cas failures must appear; answered failed gets / sets are no-ops.
    required = [op for op in history if op.ret is not None and (op.ok or op.kind == "cas")]
    optional = [op for op in history if op.ret is None and op.kind != "get"]
    for n in range(len(optional) + 1):
        for subset in itertools.combinations(optional, n):
            for order in itertools.permutations([*required, *subset]):
                if any(
                    ahead.call > (behind.ret if behind.ret is not None else inf)
                    for a, ahead in enumerate(order)
                    for behind in order[a + 1 :]
                ):
                    continue  # an op returned before an op placed ahead of it was even called
                value, version = init
                for op in order:
                    if op.kind == "get":
                        if (value, version) != op.out:
                            break
                    elif op.kind == "set":
                        value, version = op.arg, version + 1
                    elif op.ret is not None and not op.ok:
                        if version == op.expect_version:
                            break
                    elif version == op.expect_version:
                        value, version = op.arg, version + 1
                    else:
                        break
                else:
                    return True
    return False


def random_small_history(rng: random.Random) -> list[Op]:
    history = []
    for client in range(rng.randint(1, 6)):
        call = rng.randint(0, 8)
        ret = None if rng.random() < 0.2 else call + rng.randint(0, 4)
        kind = rng.choice(["get", "get", "set", "cas"])
        ok = rng.random() < 0.8
        if kind == "get":
            out = (rng.choice([b"0", b"a", b"b"]), rng.randint(0, 2)) if ret is not None else None
            history.append(Op(client, K, kind, None, None, call, ret, ok, out))
        else:
            expect = rng.randint(0, 2) if kind == "cas" else None
            history.append(Op(client, K, kind, rng.choice([b"a", b"b"]), expect, call, ret, ok, None))
    return history


def test_agrees_with_brute_force_on_small_random_histories():
    rng = random.Random(2024)
    verdicts = []
    for _ in range(1500):
        history = random_small_history(rng)
        expected = brute_force(history, (b"0", 0))
        ok, why = check(history, INIT)
        assert ok == expected, (history, why)
        verdicts.append(ok)
    assert 0.1 < sum(verdicts) / len(verdicts) < 0.9  # both verdicts are well exercised


def test_five_clients_two_hundred_ops_on_three_keys_is_fast():
    rng = random.Random(7)
    history = simulate_clients(rng, n_clients=5, ops_per_client=200, keys=["/a", "/b", "/c"])
    assert len(history) == 1000
    started = time.perf_counter()
    ok, why = check(history, _initial(history))
    elapsed = time.perf_counter() - started
    assert ok, why
    assert elapsed < 5, f"took {elapsed:.2f}s"
    bad = _mutations(rng, history)[-1]
    started = time.perf_counter()
    assert not check(bad, _initial(bad))[0]
    assert time.perf_counter() - started < 5
