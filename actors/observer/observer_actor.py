"""The observer actor: a learner that never votes and never acknowledges proposals.

It synchronizes like a follower (actors.follower.follower_actor), then receives only committed
txns (Inform), logs them, and passes them to its session actor; it forwards its clients' writes to
the leader. Observers add read capacity without slowing the write quorum.
"""

from __future__ import annotations

from actors.follower.follower_actor import FollowerActor


class ObserverActor(FollowerActor):
    observer = True
