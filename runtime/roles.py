"""The role a node serves in, handed from the supervisor to the role actor it starts.

The supervisor writes `<run_dir>/role.json` before starting a role actor (leader, follower or
observer); the actor reads it at start, and reads it again when it is restarted, so that a
restarted role actor knows whom to follow without asking. A role actor that can no longer serve
(lost its leader or its quorum) exits with `EXIT_ROLE_ENDED`: the supervisor then runs an
election instead of counting a crash.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from runtime.files import write_atomic

ROLE_FILE = "role.json"
EXIT_ROLE_ENDED = 10

STANDALONE = "standalone"
# Actor (in runtime.spawn.ACTORS) per election outcome.
ACTOR_OF_STATE = {"leading": "leader", "following": "follower", "observing": "observer", STANDALONE: "leader"}


class Role(msgspec.Struct, frozen=True):
    state: str  # leading | following | observing | standalone
    leader: int
    epoch: int = 0
    zxid: int = 0
    round: int = 0


def write_role(run_dir: str | Path, role: Role) -> None:
    write_atomic(
        Path(run_dir) / ROLE_FILE, msgspec.json.encode(role), durable=False
    )  # the run dir: rewritten at restart


def read_role(run_dir: str | Path) -> Role | None:
    try:
        return msgspec.json.decode((Path(run_dir) / ROLE_FILE).read_bytes(), type=Role)
    except (OSError, msgspec.DecodeError):
        return None
