# SPDX-License-Identifier: MIT
"""The TCP connection states (RFC 9293 3.3.2)."""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10

    @property
    def synchronized(self) -> bool:
        """RFC 9293 3.10.7.4: the states after the handshake."""
        return self >= State.ESTABLISHED

    @property
    def label(self) -> str:
        return self.name.replace("_", "-")


#: states in which our side may still send data (RFC 9293 3.10.2 SEND)
SENDING = frozenset({State.ESTABLISHED, State.CLOSE_WAIT})
#: states in which the peer may still send data to us
RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})
