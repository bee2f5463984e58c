# SPDX-License-Identifier: MIT
"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType
from ustack.wire.types import Buffer

PACKET = struct.Struct("!HHBBH6s4s6s4s")
LENGTH = PACKET.size  # 28
HTYPE_ETHERNET = 1
OP_REQUEST = 1
OP_REPLY = 2


class ARPPacket(NamedTuple):
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


def parse(data: Buffer) -> ARPPacket:
    if len(data) < LENGTH:
        raise ParseError(DropReason.TRUNCATED, "arp")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = PACKET.unpack_from(data)
    if htype != HTYPE_ETHERNET or ptype != EtherType.IPV4 or hlen != 6 or plen != 4:
        raise ParseError(DropReason.BAD_MESSAGE, "arp: not ethernet/ipv4")
    if op not in (OP_REQUEST, OP_REPLY):
        raise ParseError(DropReason.BAD_MESSAGE, f"arp op {op}")
    return ARPPacket(op, sha, spa, tha, tpa)


def build(packet: ARPPacket) -> bytes:
    return PACKET.pack(
        HTYPE_ETHERNET, EtherType.IPV4, 6, 4, packet.op,
        packet.sender_mac, packet.sender_ip, packet.target_mac, packet.target_ip,
    )
