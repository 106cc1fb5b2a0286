"""Linearizability checker for histories of get / set / compare-and-set on independent registers.

Each key is a register holding ``(value, version)`` (a znode's data and its ``Stat.version``). A history
is a list of `Op`, each with an invocation time ``call`` and a response time ``ret``. The history is
linearizable iff every op can be given a single point in ``[call, ret]`` at which it takes effect
atomically, in an order that a sequential register would accept. Keys are independent, so the history
is split per key and each sub-history is checked on its own (linearizability is compositional).

Search (Wing & Gong, with the refinements popularised by Porcupine): the call and return events of
one key are sorted by time into a doubly linked list. An op may be linearized next only if its call
comes before the first remaining return event, i.e. it was invoked before the earliest deadline of
the ops still pending. A depth-first search (iterative, with an explicit stack, so thousands of ops
per key are fine) tries those candidates in order, "lifting" an op out of the list when the model
accepts it and putting it back on backtrack. Visited ``(set of linearized ops, register state)``
pairs are memoized, so a configuration is never explored twice.

Model rules per key (state ``(value, version)``, initially ``initial[key]`` or ``(None, -1)``):

* get: takes effect only where ``state == out``; a get that failed (``ok=False``) or never returned
  says nothing and is dropped.
* set: ``value := arg, version += 1`` (ZooKeeper ``setData`` with version -1). A set that definitely
  failed (``ok=False`` with a response) had no effect and is dropped.
* cas: only where ``version == expect_version``: ``value := arg, version += 1``. A cas that
  definitely failed must be placed where ``version != expect_version`` and changes nothing.
  ``expect_version == -1`` means "any version", as in ZooKeeper, so such a cas is a plain set.
* an op without a response (timeout, connection loss) may take effect at any point after its call,
  or never. Only a write can matter: it is optional for the search, and if it takes effect it obeys
  the rules above (an unknown cas that would fail is the same as one that never happened).

`check` returns ``(True, "")`` or ``(False, explanation)``; the explanation names the key, the
register state at the deepest point the search reached and the ops it could not place there. When
the search visits more than ``max_states`` configurations in total it raises `CheckLimitExceeded`
rather than guessing: the answer is then unknown, not "not linearizable".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CheckLimitExceeded", "Op", "State", "check", "describe_op"]

State = tuple[bytes | None, int]

KINDS = ("get", "set", "cas")
NO_NODE: State = (None, -1)

# Internal op codes of the per-key model.
_GET, _SET, _CAS_OK, _CAS_FAIL = 0, 1, 2, 3
# Roles of the nodes of the event lists.
_SENTINEL, _CALL, _RETURN, _OPTIONAL = 0, 1, 2, 3


class CheckLimitExceeded(Exception):
    """The search explored more than ``max_states`` configurations without reaching a verdict.

    This is neither "linearizable" nor "not linearizable": the history was too concurrent (or too
    long) for the budget. Raise ``max_states`` or check a shorter history.
    """


@dataclass(frozen=True)
class Op:
    client: int  # who issued it
    key: str
    kind: str  # "get" | "set" | "cas"
    arg: bytes | None  # value written by set/cas, None for get
    expect_version: int | None  # for cas: the version the write requires; None otherwise
    call: float  # invocation time
    ret: float | None  # response time; None = no response (may or may not have taken effect, after call)
    ok: bool  # True: succeeded; False with ret set: definitely failed; ignored when ret is None
    out: State | None = None  # for get: the (value, version) observed; None otherwise


def describe_op(op: Op, index: int | None = None) -> str:
    """A short human-readable rendering of one op, e.g. ``#4 client 2 cas(v3 -> b'x') failed [1.0, 2.5]``."""
    head = f"#{index} " if index is not None else ""
    if op.kind == "get":
        what = f"get -> {_fmt_state(op.out)}" if op.ok else "get"
    elif op.kind == "set":
        what = f"set({op.arg!r})"
    else:
        what = f"cas(v{op.expect_version} -> {op.arg!r})"
    if op.ret is None:
        outcome, span = " unknown", f"[{op.call:g}, ...)"
    else:
        outcome = "" if op.ok else " failed"
        span = f"[{op.call:g}, {op.ret:g}]"
    return f"{head}client {op.client} {what}{outcome} {span}"


def check(
    history: list[Op],
    initial: dict[str, State] | None = None,
    max_states: int = 2_000_000,
) -> tuple[bool, str]:
    """Decide whether `history` is linearizable; see the module docstring for the rules.

    Returns ``(True, "")`` or ``(False, explanation)``. Raises `CheckLimitExceeded` when more than
    `max_states` search configurations (summed over all keys) would be needed, and `ValueError` for a
    malformed op.
    """
    initial = initial or {}
    per_key: dict[str, list[int]] = {}
    for index, op in enumerate(history):
        _validate(op, index)
        per_key.setdefault(op.key, []).append(index)
    budget = [max_states]
    for key in sorted(per_key):
        ok, why = _check_key(key, [(i, history[i]) for i in per_key[key]], initial.get(key, NO_NODE), budget)
        if not ok:
            return False, why
    return True, ""


def _validate(op: Op, index: int) -> None:
    where = f"op #{index} ({op!r})"
    if op.kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {KINDS}")
    if op.ret is not None and op.ret < op.call:
        raise ValueError(f"{where}: responds before it is invoked")
    if op.kind == "cas" and op.expect_version is None:
        raise ValueError(f"{where}: a cas needs expect_version")
    if op.kind == "get" and op.ok and op.ret is not None and op.out is None:
        raise ValueError(f"{where}: a successful get needs the observed (value, version) in out")


def _fmt_state(state: State | None) -> str:
    if state is None:
        return "?"
    value, version = state
    return "<no node>" if state == NO_NODE else f"({value!r}, v{version})"


@dataclass(frozen=True)
class _Entry:
    """One op of a key's sub-history as the model sees it."""

    index: int  # position in the caller's history, for explanations
    op: Op
    code: int  # _GET / _SET / _CAS_OK / _CAS_FAIL
    required: bool  # False: no response, may be left out of the linearization


def _entries(ops: Iterable[tuple[int, Op]]) -> list[_Entry]:
    out: list[_Entry] = []
    for index, op in ops:
        known = op.ret is not None
        if op.kind == "get":
            if known and op.ok:
                out.append(_Entry(index, op, _GET, True))
            continue  # a failed or unanswered read constrains nothing
        if known and not op.ok and (op.kind == "set" or op.expect_version == -1):
            continue  # a write that definitely failed had no effect
        if op.kind == "set" or op.expect_version == -1:
            out.append(_Entry(index, op, _SET, known))
        elif known and not op.ok:
            out.append(_Entry(index, op, _CAS_FAIL, True))
        else:
            out.append(_Entry(index, op, _CAS_OK, known))
    return out


def _check_key(key: str, ops: list[tuple[int, Op]], init: State, budget: list[int]) -> tuple[bool, str]:
    entries = _entries(ops)
    n_required = sum(e.required for e in entries)
    if n_required == 0:
        return True, ""  # only unanswered writes: they may all have been lost

    # Two circular doubly linked lists over one set of node arrays:
    # * the main list (sentinel 0): call and return events of the answered ops, sorted by time; a
    #   call at the same instant as a return sorts first, so ops that touch at an instant count as
    #   concurrent (the lenient reading of equal timestamps);
    # * the optional list (sentinel `opt`): call events of the unanswered ops, sorted by call time.
    #   They have no deadline, so keeping them apart saves walking past them, and trying them only
    #   after the answered candidates finds a linearization sooner when one exists.
    main_events: list[tuple[float, int, int]] = []  # (time, 0 = call / 1 = return, entry)
    opt_events: list[tuple[float, int, int]] = []
    for i, e in enumerate(entries):
        if e.required:
            assert e.op.ret is not None
            main_events += [(e.op.call, 0, i), (e.op.ret, 1, i)]
        else:
            opt_events.append((e.op.call, 0, i))
    main_events.sort()
    opt_events.sort()
    opt = len(main_events) + len(opt_events) + 1
    size = opt + 1
    op_of = [-1] * size
    role = [_SENTINEL] * size
    time_of = [0.0] * size
    match = [-1] * size  # call node -> its return node (-1 for unanswered ops)
    nxt = [0] * size
    prv = [0] * size
    call_node = [0] * len(entries)
    node = 0
    for sentinel, events, call_role in ((0, main_events, _CALL), (opt, opt_events, _OPTIONAL)):
        last = sentinel
        for t, which, i in events:
            node += 1
            op_of[node], time_of[node] = i, t
            if which == 0:
                role[node] = call_role
                call_node[i] = node
            else:
                role[node] = _RETURN
                match[call_node[i]] = node
            nxt[last], prv[node] = node, last
            last = node
        nxt[last], prv[sentinel] = sentinel, last

    codes = [e.code for e in entries]
    args = [e.op.arg for e in entries]
    expects = [e.op.expect_version for e in entries]
    outs = [e.op.out for e in entries]

    seen: set[tuple[int, State]] = set()
    # (lifted call node, state before it, mask before it, earliest pending return node at the time)
    stack: list[tuple[int, State, int, int]] = []
    state = init
    mask = 0
    remaining = n_required
    node = nxt[0]
    blocker = 0  # the first return node of the main list, once the walk has reached it
    limit = 0.0  # its time: unanswered ops called later are not candidates yet
    best_depth = -1
    stuck: tuple[State, int, list[int]] | None = None  # deepest dead end: state, blocking op, candidates

    while True:
        if remaining == 0:
            return True, ""
        r = role[node]
        if r == _CALL or (r == _OPTIONAL and time_of[node] <= limit):
            i = op_of[node]
            code = codes[i]
            version = state[1]
            if code == _GET:
                new_state: State | None = state if state == outs[i] else None
            elif code == _SET:
                new_state = (args[i], version + 1)
            elif code == _CAS_OK:
                new_state = (args[i], version + 1) if version == expects[i] else None
            else:  # _CAS_FAIL
                new_state = state if version != expects[i] else None
            if new_state is not None:
                new_mask = mask | (1 << i)
                memo = (new_mask, new_state)
                if memo not in seen:
                    budget[0] -= 1
                    if budget[0] < 0:
                        raise CheckLimitExceeded(
                            f"search limit exceeded on key {key!r}: more than the allowed number of states "
                            f"explored ({len(entries)} ops on this key, deepest prefix {max(best_depth, 0)})"
                        )
                    seen.add(memo)
                    stack.append((node, state, mask, blocker))
                    state, mask = new_state, new_mask
                    # lift the op: unlink its call node, then its return node
                    nxt[prv[node]] = nxt[node]
                    prv[nxt[node]] = prv[node]
                    ret_node = match[node]
                    if ret_node != -1:
                        nxt[prv[ret_node]] = nxt[ret_node]
                        prv[nxt[ret_node]] = prv[ret_node]
                        remaining -= 1
                    node = nxt[0]
                    continue
            node = nxt[node]
            continue
        if r == _RETURN:
            # The earliest pending deadline: no answered op called after it can go next. Try the
            # unanswered ops called before it.
            blocker, limit = node, time_of[node]
            node = nxt[opt]
            continue

        # Dead end: nothing can be linearized next from here.
        if len(stack) > best_depth:
            best_depth = len(stack)
            candidates = []
            walk = nxt[0]
            while walk != blocker:
                candidates.append(op_of[walk])
                walk = nxt[walk]
            walk = nxt[opt]
            while walk != opt and time_of[walk] <= limit:
                candidates.append(op_of[walk])
                walk = nxt[walk]
            stuck = (state, op_of[blocker], candidates)
        if not stack:
            break
        node, state, mask, blocker = stack.pop()
        limit = time_of[blocker]
        ret_node = match[node]
        if ret_node != -1:  # unlift: relink the return node, then the call node
            nxt[prv[ret_node]] = ret_node
            prv[nxt[ret_node]] = ret_node
            remaining += 1
        nxt[prv[node]] = node
        prv[nxt[node]] = node
        node = nxt[node]

    assert stuck is not None
    at_state, blocking, candidates = stuck
    tried = [describe_op(entries[c].op, entries[c].index) for c in candidates if c != blocking]
    more = f" (+{len(tried) - 5} more)" if len(tried) > 5 else ""
    alternatives = f"; the concurrent ops {', '.join(tried[:5])}{more} do not help" if tried else ""
    return False, (
        f"key {key!r}: not linearizable: at best {best_depth} of {len(entries)} ops linearize, reaching "
        f"state {_fmt_state(at_state)}, and then {describe_op(entries[blocking].op, entries[blocking].index)} "
        f"cannot take effect before its response{alternatives}"
    )
