# SPDX-License-Identifier: MIT
"""Why a packet was dropped: one enum shared by parsers and the stack's counters."""

from __future__ import annotations

import enum


class DropReason(enum.Enum):
    """Reasons a frame or packet is dropped; each one is a counter in the stats."""

    TRUNCATED = "truncated"
    BAD_VERSION = "bad version"
    BAD_HEADER_LENGTH = "bad header length"
    BAD_LENGTH = "bad length field"
    BAD_CHECKSUM = "bad checksum"
    BAD_OPTION = "malformed option"
    BAD_ADDRESS = "bad address"
    BAD_FRAGMENT = "bad fragment"
    FRAGMENT_OVERLAP = "overlapping fragment"
    REASSEMBLY_TIMEOUT = "reassembly timeout"
    REASSEMBLY_MEMORY = "reassembly memory limit"
    BAD_EXTENSION_HEADER = "bad extension header"
    UNKNOWN_ETHERTYPE = "unknown ethertype"
    UNKNOWN_PROTOCOL = "unknown protocol"
    NOT_FOR_US = "not addressed to us"
    TTL_EXPIRED = "ttl expired"
    NO_ROUTE = "no route"
    NO_LISTENER = "no endpoint"
    UNRESOLVED = "link address unresolved"
    QUEUE_FULL = "queue full"
    RCVBUF_FULL = "receive buffer full"
    BAD_MESSAGE = "malformed message"
    HOP_LIMIT_INVALID = "ndp hop limit not 255"
    RATE_LIMITED = "rate limited"
    TOO_BIG = "exceeds mtu"
    LINK_DOWN = "link down"
    BAD_SEGMENT = "bad segment"
    OUT_OF_WINDOW = "out of window"


class ParseError(Exception):
    """A wire-format check failed; the receive path counts it and drops the packet."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
