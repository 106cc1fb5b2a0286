"""A minimal zoomq client written only from docs/protocol.md: plain lists over msgpack, a DEALER
socket, no import from zoomq. It shows what a client in another language has to do.

    python examples/minimal_client.py 127.0.0.1:2181
"""

from __future__ import annotations

import sys

import msgspec
import zmq


class MiniClient:
    def __init__(self, address: str, timeout_ms: int = 10_000) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://{address}")
        self.xid = 0
        self.last_zxid = 0
        self.events: list[list] = []
        self._send(["connect", 1, 0, timeout_ms, 0, b"", False])
        reply = self._recv()
        if reply[0] != "connected" or reply[2] == 0:
            raise RuntimeError(f"no session: {reply}")
        self.session_id, self.passwd = reply[3], reply[4]

    def _send(self, msg: list) -> None:
        self.sock.send(msgspec.msgpack.encode(msg))

    def _recv(self, wait_ms: int = 10_000) -> list:
        if not self.sock.poll(wait_ms):
            raise TimeoutError("the node did not answer")
        return msgspec.msgpack.decode(self.sock.recv())

    def call(self, tag: str, *fields: object) -> tuple[int, object]:
        """Send one request; (err, body) of its reply. Events that arrive first are kept."""
        self.xid += 1
        self._send([tag, self.xid, *fields])
        for _ in range(10_000):
            msg = self._recv()
            if msg[0] == "e":
                self.events.append(msg)
                continue
            if msg[0] == "r" and msg[1] == self.xid:
                self.last_zxid = max(self.last_zxid, msg[2])
                return msg[3], (msg[4] if len(msg) > 4 else None)
        raise RuntimeError("no reply")

    def wait_event(self, wait_ms: int = 10_000) -> list:
        if self.events:
            return self.events.pop(0)
        msg = self._recv(wait_ms)
        if msg[0] != "e":
            raise RuntimeError(f"expected an event, got {msg}")
        return msg

    def close(self) -> None:
        self.call("close")
        self.sock.close(linger=0)


OPEN_ACL = [[31, ["world", "anyone"]]]


def main(address: str) -> int:
    c = MiniClient(address)
    print("session", hex(c.session_id))
    print("create", c.call("create", "/mini", b"hello", OPEN_ACL, 0, 0))
    print("get", c.call("get", "/mini", True))
    other = MiniClient(address)
    other.call("set", "/mini", b"world", -1)
    print("event", c.wait_event())
    print("delete", c.call("delete", "/mini", -1))
    other.close()
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2181"))
