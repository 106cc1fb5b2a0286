"""Process entry point of one actor: `python -m runtime.spawn ACTOR CONFIG_JSON RUN_DIR`.

The supervisor starts every actor this way (a fresh interpreter: no inherited sockets or threads),
so that each actor is its own process with its own PID, restartable on its own. In an ensemble it
also keeps one `python -m runtime.spawn standby CONFIG_JSON RUN_DIR` waiting: the next role actor
(leader, follower or observer) is that process, told its name on stdin, so that a leader change
does not wait for an interpreter to start and import the role's modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import os
import sys
from pathlib import Path

from runtime import logs
from runtime.actor import die_with_parent
from runtime.config import from_json
from runtime.files import write_atomic

# actor name -> "module:Class". The supervisor's role sets name actors from this table.
ACTORS = {
    "log": "actors.log.log_actor:LogActor",
    "leader": "actors.leader.leader_actor:LeaderActor",
    "follower": "actors.follower.follower_actor:FollowerActor",
    "observer": "actors.observer.observer_actor:ObserverActor",
    "election": "actors.election.election_actor:ElectionActor",
    "session": "actors.session.session_actor:SessionActor",
    "gateway": "actors.gateway.gateway_actor:GatewayActor",
    "ops": "actors.ops.ops_actor:OpsActor",
}


STANDBY = "standby"
STANDBY_READY = "standby.ready"  # in the run dir: the pid of the standby whose preload is done
ROLES = ("leader", "follower", "observer")


def command(actor: str, config_path: str, run_dir: str) -> list[str]:
    """The argv that starts `actor` (or, with STANDBY, a process ready to become a role actor)."""
    return [sys.executable, "-m", "runtime.spawn", actor, config_path, run_dir]


def standby(config_path: str, run_dir: str) -> int:
    """A role actor started ahead of time: the interpreter is up, the role modules are imported and
    the state is read from disk (a leader then only catches up from the log; the preload is
    checked against the disk first, see actors/log/recovery.py `resume_state`). The supervisor
    writes the actor's name to stdin when an election ends (EOF: not needed)."""
    die_with_parent()
    for name in ROLES:
        importlib.import_module(ACTORS[name].partition(":")[0])
    cfg = from_json(Path(config_path).read_bytes())
    if cfg.standby_preload:
        from collections import deque

        from actors.leader import leader_actor
        from actors.log.recovery import load_state

        log = logs.configure(node=cfg.sid, actor="standby", level=cfg.log_level, json=cfg.log_json)
        tail: deque = deque(maxlen=leader_actor.RECENT_COMMITS)
        leader_actor.PRELOADED = (
            load_state(Path(cfg.data_dir) / "version-1", log=log, tail=tail, keep_data=False),
            tail,
        )
    with contextlib.suppress(OSError):  # seen by the supervisor's status (and the tools that wait on it)
        write_atomic(Path(run_dir) / STANDBY_READY, str(os.getpid()).encode(), durable=False)
    name = sys.stdin.readline().strip()
    if name not in ROLES:
        return 0
    if name != "leader":
        _drop_preload()
    return main([name, config_path, run_dir])


def _drop_preload() -> None:
    """A follower or observer has no use for the tree: give its memory back."""
    from actors.leader import leader_actor

    if leader_actor.PRELOADED is None:
        return
    leader_actor.PRELOADED = None
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def main(argv: list[str]) -> int:
    if argv and argv[0] == STANDBY:
        return standby(*argv[1:])
    die_with_parent()
    actor_name, config_path, run_dir = argv
    cfg = from_json(Path(config_path).read_bytes())
    log = logs.configure(node=cfg.sid, actor=actor_name, level=cfg.log_level, json=cfg.log_json)
    module_name, _, class_name = ACTORS[actor_name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    actor = cls(cfg, run_dir, log)
    log.info("actor_started", pid=os.getpid())
    return actor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
