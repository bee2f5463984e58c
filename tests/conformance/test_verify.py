# SPDX-License-Identifier: MIT
"""Comparing a packet the stack sent with the script's: the checks of each mode."""

from __future__ import annotations

import ipaddress

from ustack.testing.packetdrill import parse_script
from ustack.testing.packetdrill.model import TcpPacket, TimeKind
from ustack.testing.packetdrill.packets import decode, ip_packet, tcp_segment
from ustack.testing.packetdrill.verify import Mode, check_packet, check_time
from ustack.wire import ethernet
from ustack.wire import tcp as wire
from ustack.wire.proto import EtherType, IPProto

SRC = ipaddress.ip_address("192.168.0.1").packed
DST = ipaddress.ip_address("192.0.2.1").packed


def frame(flags: int, options: bytes = b"", window: int = 1000, corrupt: bool = False) -> bytes:
    l4 = bytearray(tcp_segment(SRC, DST, 8080, 40001, 1, 1, flags, window, options, b""))
    if corrupt:
        l4[16] ^= 0xFF
    return ethernet.build(b"\2" * 6, b"\4" * 6, EtherType.IPV4) + \
        ip_packet(SRC, DST, IPProto.TCP, bytes(l4))


def expected(line: str) -> TcpPacket:
    (pkt,) = parse_script(f"0 {line}").events
    assert isinstance(pkt, TcpPacket)
    return pkt


def test_psh_and_window_are_strict_only() -> None:
    out = decode(0, frame(wire.ACK | wire.PSH))
    assert out is not None
    script = expected("> . 1:1(0) ack 1 win 2000")
    bad = check_packet(script, out, Mode.STRICT)
    assert bad is not None and bad.what == "flags"
    assert check_packet(script, out, Mode.RELAXED) is None


def test_options_compared_as_a_set_in_relaxed_mode() -> None:
    raw = bytes.fromhex("0101080a000000070000000502040578")  # nop nop TS, mss 1400
    out = decode(0, frame(wire.ACK, raw))
    assert out is not None
    script = expected("> . 1:1(0) ack 1 win 1000 <mss 1400,nop,nop,TS val 99 ecr 5>")
    bad = check_packet(script, out, Mode.STRICT)
    assert bad is not None and bad.what == "options"
    assert check_packet(script, out, Mode.RELAXED) is None  # only the TS ecr counts
    other_ecr = expected("> . 1:1(0) ack 1 win 1000 <mss 1400,nop,nop,TS val 99 ecr 6>")
    assert check_packet(other_ecr, out, Mode.RELAXED) is not None


def test_bad_checksum_fails_in_both_modes() -> None:
    out = decode(0, frame(wire.ACK, corrupt=True))
    assert out is not None
    for mode in Mode:
        bad = check_packet(expected("> . 1:1(0) ack 1 win 1000"), out, mode)
        assert bad is not None and bad.what == "checksum"


def test_time_windows() -> None:
    assert check_time(TimeKind.ABSOLUTE, 100, None, 104, 5) is None
    assert check_time(TimeKind.ABSOLUTE, 100, None, 106, 5) is not None
    assert check_time(TimeKind.RELATIVE_RANGE, 100, 200, 205, 5) is None
    assert check_time(TimeKind.RELATIVE_RANGE, 100, 200, 94, 5) is not None
    assert check_time(TimeKind.ANY, 0, None, 10**9, 0) is None
