"""Dynamic reconfiguration on real ensembles, under write load and faults: grow 3 -> 5, shrink
5 -> 3 removing the leader, replace a dead node, a participant made an observer and back, and a
reconfig racing the SIGKILL of its leader. After each: the new membership is in force (a quorum
of the new voters is needed and enough: checked by killing nodes the old membership needed),
every node shows the same /zookeeper/config, and no acknowledged write is lost."""

from __future__ import annotations

import pytest

from tests_support import check_every_node, writer_on
from zoomq.exceptions import KazooException
from zoomq.security import make_digest_acl_credential
from zoomq.testing import ZoomqEnsemble, ZoomqServer, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]
SUPER = {"auth_data": [("digest", "super:secret")]}


def ensemble(tmp_path, n: int) -> ZoomqEnsemble:
    return ZoomqEnsemble(
        n, base_dir=tmp_path, reconfig_enabled=True, super_digest=make_digest_acl_credential("super", "secret")
    )


def members(config: bytes) -> dict[int, str]:
    """/zookeeper/config's members: id -> role."""
    out = {}
    for line in config.decode().splitlines():
        if line.startswith("server."):
            key, _, value = line.partition("=")
            out[int(key[len("server.") :])] = value.split(";")[0].split(":")[3]
    return out


def same_config_everywhere(ens: ZoomqEnsemble, expected: bytes) -> None:
    """Every running member serves `expected` as /zookeeper/config (after its sync). (A server
    that is not a member, and never applied a reconfig, shows the membership it was configured
    with.)"""
    for node in ens.nodes:
        if not node.running or node.sid in ens.removed or node.sid not in members(expected):
            continue
        zk = ens.client(hosts=node.hosts)
        try:
            wait_for(lambda zk=zk: zk.get_config()[0] == expected, 20, f"node {node.sid}'s /zookeeper/config")
        finally:
            zk.stop()


def roles(ens: ZoomqEnsemble) -> dict[int, str | None]:
    return {n.sid: ens.role_of(n) for n in ens.nodes if n.running}


def test_grow_3_to_5_under_writes_then_lose_two_of_the_first_three(tmp_path):
    with ensemble(tmp_path, 3) as ens:
        writer = writer_on(ens)
        admin = ens.client(**SUPER)
        writer.wait_more(50)
        four, five = ens.add_node(), ens.add_node()
        writer.wait_more(20)  # the joiners follow, not voting, while writes go on
        config, stat = admin.reconfig(joining=f"{ens.spec(four)},{ens.spec(five)}", leaving=None, new_members=None)
        assert members(config) == dict.fromkeys(range(1, 6), "participant")
        assert config.endswith(f"version={stat.mzxid:x}".encode())
        writer.wait_more(50)
        wait_for(lambda: sorted(roles(ens).values()) == ["follower"] * 4 + ["leader"], 30, "five voters")
        same_config_everywhere(ens, config)
        # Three of five are a quorum now; with the old membership, one of three would not be.
        survivors = [four, five]
        doomed = [n for n in ens.nodes[:3] if ens.role_of(n) != "leader"]
        for node in doomed:
            node.kill()
        survivors.append(next(n for n in ens.nodes[:3] if n not in doomed))
        writer.wait_more(50)
        acked = writer.finish()
        for node in doomed:
            node.start(timeout=60)
        check_every_node(ens, acked)
        four.restart(timeout=60)  # a restart keeps the membership (the data dir's membership.json)
        wait_for(lambda: ens.role_of(four) == "follower", 30, "node 4 following again")


def test_shrink_5_to_3_removing_the_leader(tmp_path):
    with ensemble(tmp_path, 5) as ens:
        writer = writer_on(ens)
        admin = ens.client(**SUPER)
        writer.wait_more(50)
        leader = ens.leader()
        other = next(n for n in ens.nodes if n is not leader)
        config, _ = admin.reconfig(joining=None, leaving=f"{leader.sid},{other.sid}", new_members=None)
        assert set(members(config)) == {n.sid for n in ens.nodes} - {leader.sid, other.sid}
        new_leader = ens.wait_leader(exclude=leader)  # the removed leader stepped down
        assert new_leader.sid in members(config)
        ens.retire(leader)
        ens.retire(other)
        writer.wait_more(50)
        same_config_everywhere(ens, config)
        # Two of the three left are a quorum of the new membership (two of five were not).
        victim = next(n for n in ens.nodes if n.running and n is not new_leader)
        victim.kill()
        writer.wait_more(50)
        acked = writer.finish()
        victim.start(timeout=60)
        check_every_node(ens, acked)


def test_replace_a_dead_node(tmp_path):
    with ensemble(tmp_path, 3) as ens:
        writer = writer_on(ens)
        admin = ens.client(**SUPER)
        writer.wait_more(50)
        dead = next(n for n in ens.nodes if ens.role_of(n) != "leader")
        dead.kill()
        writer.wait_more(20)
        fresh = ens.add_node()
        config, _ = admin.reconfig(joining=ens.spec(fresh), leaving=str(dead.sid), new_members=None)
        assert set(members(config)) == {1, 2, 3, 4} - {dead.sid}
        ens.removed.add(dead.sid)
        writer.wait_more(50)
        wait_for(lambda: ens.role_of(fresh) == "follower", 30, "the new node following")
        # The new node is a voter: with it, one more loss is survivable.
        other = next(n for n in ens.nodes if n.running and n is not fresh and ens.role_of(n) == "follower")
        other.kill()
        writer.wait_more(30)
        acked = writer.finish()
        other.start(timeout=60)
        check_every_node(ens, acked)


def test_a_participant_becomes_an_observer_and_back(tmp_path):
    with ensemble(tmp_path, 3) as ens:
        admin = ens.client(**SUPER)
        node = next(n for n in ens.nodes if ens.role_of(n) != "leader")
        spec = ens.spec(node)
        config, _ = admin.reconfig(joining=spec.replace(":participant;", ":observer;"), leaving=None, new_members=None)
        assert members(config)[node.sid] == "observer"
        wait_for(lambda: ens.role_of(node) == "observer", 30, "the node observing")
        admin.create("/seen-by-the-observer", b"1")
        zk = ens.client(hosts=node.hosts)
        zk.sync("/")
        assert zk.get("/seen-by-the-observer")[0] == b"1"
        config, _ = admin.reconfig(joining=spec, leaving=None, new_members=None)
        assert members(config)[node.sid] == "participant"
        wait_for(lambda: ens.role_of(node) == "follower", 30, "the node following again")
        same_config_everywhere(ens, config)


def test_a_reconfig_racing_the_kill_of_its_leader(tmp_path):
    with ensemble(tmp_path, 3) as ens:
        writer = writer_on(ens)
        admin = ens.client(**SUPER)
        writer.wait_more(50)
        four = ens.add_node()
        leader = ens.leader()
        result = admin.reconfig_async(ens.spec(four), None, None, -1)
        leader.kill()
        try:
            config, _ = result.get(timeout=60)
            outcome = "committed"
        except KazooException as exc:  # the connection died with it: committed or not, the ensemble decides
            outcome = type(exc).__name__
            config = None
        new_leader = ens.wait_leader(exclude=leader, timeout=60)
        writer.wait_more(50)
        current = ens.client(hosts=new_leader.hosts).get_config()[0]
        if config is not None:
            assert current == config  # acknowledged: it survived the leader
        assert set(members(current)) in ({1, 2, 3}, {1, 2, 3, 4}), outcome
        leader.start(timeout=60)
        same_config_everywhere(ens, current)
        acked = writer.finish()
        check_every_node(ens, acked)


def _errors(zk, **kw) -> str:
    try:
        zk.reconfig(**{"joining": None, "leaving": None, "new_members": None, **kw})
    except KazooException as exc:
        return type(exc).__name__
    return "ok"


def test_refusals_name_the_reason(tmp_path):
    with ensemble(tmp_path, 3) as ens:
        admin = ens.client(**SUPER)
        plain = ens.client()
        assert _errors(plain, leaving="3") == "NoAuthError"
        assert _errors(admin, joining="server.x=nonsense") == "BadArgumentsError"
        assert _errors(admin, leaving="1,2,3") == "BadArgumentsError"  # nobody left to vote
        assert _errors(admin, leaving="3", from_config=12345) == "BadVersionError"
        dead = "server.8=127.0.0.1:1:2;3,server.9=127.0.0.1:4:5;6"  # two voters that do not run
        assert _errors(admin, joining=dead, leaving="3") == "NewConfigNoQuorumError"
        version = int(admin.get_config()[0].decode().rsplit("=", 1)[1], 16)
        config, _ = admin.reconfig(
            joining=None,
            leaving=None,
            new_members=admin.get_config()[0].decode().rsplit("\n", 1)[0].replace("\n", ","),
            from_config=version,
        )
        assert members(config) == dict.fromkeys((1, 2, 3), "participant")
    with ZoomqEnsemble(3, base_dir=tmp_path / "off") as off:  # reconfig_enabled is off by default
        assert _errors(off.client(), leaving="3") == "ReconfigDisabledError"


def test_standalone_has_no_reconfig(tmp_path):
    with ZoomqServer(data_dir=tmp_path, reconfig_enabled=True) as node:
        assert _errors(node.client(), leaving="1") == "UnimplementedError"


def test_a_curve_ensemble_grows_once_the_members_have_the_joiners_key(tmp_path):
    """CURVE: a joiner is refused on the quorum and election ports until its public key is in the
    members' curve_peer_keys (no member restarts); then it follows, is made a voter, is connected
    to by an election, and a member restarted after the reconfig finds its key there."""
    from zoomq.exceptions import NewConfigNoQuorumError

    with ZoomqEnsemble(
        3,
        base_dir=tmp_path,
        curve=True,
        reconfig_enabled=True,
        super_digest=make_digest_acl_credential("super", "secret"),
    ) as ens:
        leader = ens.leader()
        away, leaving = ens.followers()
        writer = writer_on(ens, prefer=leader)
        admin = ens.client(hosts=leader.hosts, **SUPER)
        writer.wait_more(30)
        four = ens.add_node(wait=False, admit=False)
        wait_for(lambda: '"key_refused"' in four.log_text(), 60, "the members refusing the joiner's key")
        dropped = f'"sid": {away.sid}, "why"'  # the leader's learner_dropped line for it
        before = leader.log_text().count(dropped)
        away.kill()
        # Asked before the leader saw `away` go, the reconfig would be proposed (its new voters
        # synchronized) and then stall, with no quorum of them: wait until the leader knows.
        wait_for(lambda: leader.log_text().count(dropped) > before, 30, "the leader dropping the killed follower")
        # The new voters {leader, away, 4} have a quorum only if 4 follows: refused, it cannot.
        with pytest.raises(NewConfigNoQuorumError):
            admin.reconfig(joining=ens.spec(four), leaving=str(leaving.sid), new_members=None)
        ens.admit(four)
        four.wait_ready(60)

        def added() -> bytes | None:  # once the leader counts 4 as synchronized
            try:
                return admin.reconfig(joining=ens.spec(four), leaving=str(leaving.sid), new_members=None)[0]
            except NewConfigNoQuorumError:
                return None

        config = wait_for(added, 60, "the admitted joiner synchronized, and the reconfig done", interval=0.2)
        assert members(config) == {leader.sid: "participant", away.sid: "participant", four.sid: "participant"}
        ens.retire(leaving)
        writer.wait_more(30)
        away.start(timeout=60)  # it missed the reconfig: it learns server 4 (no key in its config) later
        leader.kill()  # 4 and `away` elect a leader over CURVE election connections
        new_leader = ens.wait_leader(timeout=60, exclude=leader)
        writer.wait_more(30)
        leader.start(timeout=60)
        same_config_everywhere(ens, config)
        check_every_node(ens, writer.finish())
        assert new_leader in (four, away)
