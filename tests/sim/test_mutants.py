"""The simulator has teeth: each known bug, planted in a copy of a core, is caught within a bounded
number of seeds. A mutant that slips through means the invariants or the fault schedule went blind."""

from __future__ import annotations

import msgspec
import pytest

from actors.follower.learner import Learner, Phase
from actors.leader.leader import Leader
from actors.leader.sync import SyncPlan
from actors.protocol.effects import Tell
from actors.protocol.internal import Committed
from actors.protocol.txn import Marker
from tests.sim.client import SimClient
from tests.sim.runner import run_seeds
from tests.sim.world import Factories, SimConfig
from zoomq.engine import SessionEngine

pytestmark = [pytest.mark.sim, pytest.mark.timeout(300)]
SEEDS = range(1, 201)  # each mutant must be caught within these


class CommitWithoutQuorum(Leader):
    """Commits what its own log made durable, without waiting for the followers' ACKs."""

    def _establish(self) -> None:
        super()._establish()
        proposer = self.proposer
        original = proposer.logged

        def logged(sid: int, zxid: int) -> None:
            original(sid, zxid)
            if sid == proposer.me:
                proposer.committed_zxid = max(proposer.committed_zxid, min(zxid, proposer.last_proposed_zxid))

        proposer.logged = logged


class EpochNotAboveAccepted(Leader):
    """Picks its new epoch from its own history only, not above every learner's accepted epoch (and
    counts the learners that had accepted it already: the learners' own refusal would hide the bug)."""

    def _try_new_epoch(self) -> None:
        learners = self.learners
        saved = {to: p.accepted_epoch for to, p in learners.items()}
        for p in learners.values():
            p.accepted_epoch = 0
        try:
            super()._try_new_epoch()
        finally:
            for to, epoch in saved.items():
                if to in learners:
                    learners[to].accepted_epoch = epoch

    def _on_ack_epoch(self, peer, msg) -> None:
        super()._on_ack_epoch(peer, msg)
        peer.vouches = True  # and counts a learner that had accepted the epoch already, as if fresh


class NoTrunc(Leader):
    """Sends a learner holding a dead leader's uncommitted proposals a DIFF instead of a TRUNC."""

    def sync_ready(self, to, prepared):  # type: ignore[no-untyped-def]
        if prepared.plan.kind == "trunc":
            common = prepared.plan.common
            prepared = msgspec.structs.replace(prepared, plan=SyncPlan("diff", common))
        super().sync_ready(to, prepared)


class SyncToCommitPoint(Leader):
    """Ends a learner's synchronization at the proposer's commit point, which acks earlier in the
    same batch may have moved past the last commit sent out (the nemesis found this one)."""

    def _sync_point(self) -> int:
        return self.last_logged if self.proposer is None else self.proposer.committed_zxid


class ReleaseBeforeFsync(Learner):
    """Passes commits to its session actor before its own log has them durable."""

    def _flush(self) -> None:
        if self.phase is not Phase.SERVING or self.ended:
            return
        out = []
        while self.commits:
            head = self.commits.popleft()
            if isinstance(head, Marker):
                out.append(head)
                continue
            txn = self.proposals.pop(head, None)
            if txn is not None:
                out.append(txn)
                self.released = head
        if out:
            self._out.append(Tell("session", Committed(entries=out)))


class RenumberingEngine(SessionEngine):
    """Re-sends a request left unanswered with a new xid (the leader cannot recognise it)."""

    def connection_lost(self, now: float, served: bool) -> None:
        super().connection_lost(now, served)
        self.xid_gen += 1  # every request waiting to be sent again is renumbered first


class RenumberingClient(SimClient):
    engine_class = RenumberingEngine


def _slow_disk(world) -> None:  # fsyncs slow enough that crashes land between write and fsync
    world.faults.slow_disk = 40.0


@pytest.mark.parametrize(
    ("mutant", "factories", "setup"),
    [
        ("commit before a quorum ACK", Factories(leader=CommitWithoutQuorum), None),
        ("a new epoch not above every accepted one", Factories(leader=EpochNotAboveAccepted), None),
        ("no TRUNC of an uncommitted tail", Factories(leader=NoTrunc), _slow_disk),
        ("a commit released before the local fsync", Factories(learner=ReleaseBeforeFsync), _slow_disk),
        ("a NEWLEADER past the txns sent", Factories(leader=SyncToCommitPoint), None),
        ("a write re-sent with a new xid", Factories(client=RenumberingClient), None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_simulator_catches_a_planted_bug(mutant, factories, setup):
    result = run_seeds(SEEDS, SimConfig(), factories, setup)
    assert result.failure is not None, f"{mutant}: not caught in {result.seeds} seeds"
    print(
        f"{mutant}: caught at seed {result.failed_seed} ({result.seeds} seeds tried)\n{result.failure.splitlines()[0]}"
    )


def test_the_healthy_cores_pass_the_same_seeds_with_a_slow_disk():
    """The control: the seeds and settings the mutants fail on pass with the real cores."""
    result = run_seeds(range(1, 41), SimConfig(), None, _slow_disk)
    assert result.failure is None, result.failure
