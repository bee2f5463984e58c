# SPDX-License-Identifier: MIT
"""The script language: tokens, the preprocessor, events and expressions."""

from __future__ import annotations

import pytest

from ustack.testing.packetdrill import parse_script
from ustack.testing.packetdrill.lexer import ScriptError, tokenize
from ustack.testing.packetdrill.model import (
    ELLIPSIS,
    BinaryExpr,
    CallExpr,
    Code,
    Command,
    IcmpPacket,
    ListExpr,
    StructExpr,
    Syscall,
    TcpOption,
    TcpPacket,
    TimeKind,
    TimeSpec,
    Word,
)
from ustack.testing.packetdrill.packets import encode_options
from ustack.testing.packetdrill.preprocess import preprocess


def events(source: str) -> list[object]:
    return list(parse_script(source).events)


def test_tokens_keep_flags_times_and_ellipses_apart() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("+0...0.05 S. 1:2(1) 0x1f .5 1. // c")]
    assert kinds == [("PUNCT", "+"), ("INT", "0"), ("ELLIPSIS", "..."), ("FLOAT", "0.05"),
                     ("WORD", "S"), ("PUNCT", "."), ("INT", "1"), ("PUNCT", ":"),
                     ("INT", "2"), ("PUNCT", "("), ("INT", "1"), ("PUNCT", ")"),
                     ("HEX", "0x1f"), ("FLOAT", ".5"), ("INT", "1"), ("PUNCT", "."),
                     ("EOF", "")]


def test_multiline_code_and_comments_keep_line_numbers() -> None:
    script = parse_script("/* a\nb */\n0 `sysctl -w x=1`\n+0 %{\nassert 1\n}%\n+1 close(3) = 0")
    cmd, code, call = script.events
    assert isinstance(cmd, Command) and cmd.line == 3 and cmd.text == "sysctl -w x=1"
    assert isinstance(code, Code) and code.line == 4 and "assert 1" in code.text
    assert isinstance(call, Syscall) and call.line == 7


@pytest.mark.parametrize(("text", "spec"), [
    ("0.25", TimeSpec(TimeKind.ABSOLUTE, 250_000)),
    ("+1", TimeSpec(TimeKind.RELATIVE, 1_000_000)),
    ("+.1", TimeSpec(TimeKind.RELATIVE, 100_000)),
    ("*", TimeSpec(TimeKind.ANY)),
    ("0.1~0.2", TimeSpec(TimeKind.ABSOLUTE_RANGE, 100_000, 200_000)),
    ("+0~+0.5", TimeSpec(TimeKind.RELATIVE_RANGE, 0, 500_000)),
])
def test_times(text: str, spec: TimeSpec) -> None:
    (pkt,) = events(f"{text} > . 1:1(0) ack 1")
    assert isinstance(pkt, TcpPacket) and pkt.time == spec


def test_tcp_packet_fields() -> None:
    (pkt,) = events("0 < [ect0] SEW 10:20(10) ack 7 win 100 urg 3 "
                    "<mss 1460,nop,wscale 6,sackOK,TS val 5 ecr 6,sack 1:2 3:4,eol>")
    assert isinstance(pkt, TcpPacket) and pkt.inbound
    assert (pkt.flags, pkt.seq, pkt.length, pkt.ack, pkt.window, pkt.urgent, pkt.ecn) == \
        ("SEW", 10, 10, 7, 100, 3, "ect0")
    assert pkt.options == (TcpOption("mss", (1460,)), TcpOption("nop"),
                           TcpOption("wscale", (6,)), TcpOption("sackOK"),
                           TcpOption("TS", (5, 6)), TcpOption("sack", (1, 2, 3, 4)),
                           TcpOption("eol"))


def test_outbound_packet_shorthands() -> None:
    a, b, c = events("0 > . 1:1(0) ack 1 <...>\n+0 > S. ...(0) ack 9 win 5\n+0 > - 1:1(0)")
    assert isinstance(a, TcpPacket) and a.options is None and a.window is None
    assert isinstance(b, TcpPacket) and b.ignore_seq and b.flags == "S."
    assert isinstance(c, TcpPacket) and c.flags == ""


def test_options_are_encoded_as_written() -> None:
    opts = (TcpOption("mss", (1460,)), TcpOption("sackOK"), TcpOption("eol"),
            TcpOption("eol"), TcpOption("FO", data=bytes.fromhex("aabb")))
    assert encode_options(opts, 1) == bytes.fromhex("020405b4" "0402" "0000" "2204aabb")
    with pytest.raises(ScriptError, match="not padded"):
        encode_options((TcpOption("mss", (1,)), TcpOption("nop")), 1)


def test_icmp_packet() -> None:
    (pkt,) = events("0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]")
    assert isinstance(pkt, IcmpPacket)
    assert (pkt.icmp_type, pkt.code, pkt.mtu, pkt.echoed_seq, pkt.echoed_length) == \
        ("unreachable", "frag_needed", 1200, 1, 1460)


def test_syscalls_with_errno_notes_and_structures() -> None:
    a, b, c, d = events(
        "0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n"
        "+0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)\n"
        "+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n"
        "+0...0.1 write (3, ..., 10) = O_RDWR | O_NONBLOCK\n")
    assert isinstance(a, Syscall) and a.result == -1 and a.errno == "EINPROGRESS"
    assert a.note == "Operation now in progress" and a.args == (3, ELLIPSIS, ELLIPSIS)
    assert isinstance(b, Syscall) and b.result == 2 and b.errno is None and b.note == "flags O_RDWR"
    assert isinstance(c, Syscall)
    assert c.args[3] == StructExpr((("onoff", 1), ("linger", 0)))
    assert isinstance(d, Syscall) and d.name == "write" and d.end == 100_000
    assert d.result == BinaryExpr("|", Word("O_RDWR"), Word("O_NONBLOCK"))


def test_expressions() -> None:
    (call,) = events('0 f([1, [2]], htons(8080), inet_addr("1.2.3.4"), "a" "b", -3) = 0')
    assert isinstance(call, Syscall)
    assert call.args == (ListExpr((1, ListExpr((2,)))), CallExpr("htons", (8080,)),
                         CallExpr("inet_addr", ("1.2.3.4",)), "ab", -3)


def test_preprocessor_picks_branches_and_keeps_lines() -> None:
    text = "#ifdef A\nx\n#else\ny\n#endif\n#ifndef B\nz\n#endif"
    assert preprocess(text, ["A"]).split("\n") == ["", "x", "", "", "", "", "z", ""]
    assert preprocess(text, ["B"]).split("\n") == ["", "", "", "y", "", "", "", ""]
    with pytest.raises(ScriptError, match="#endif"):
        preprocess("#ifdef A\n")


def test_header_options() -> None:
    script = parse_script("--ip_version=ipv6\n--tolerance_usecs=7\n0 close(3) = 0")
    assert script.options == {"ip_version": "ipv6", "tolerance_usecs": "7"}


@pytest.mark.parametrize(("source", "message"), [
    ("0 > Z 1:1(0)", "expected TCP flags"),
    ("0 > . 1:5(3)", "inconsistent TCP sequence numbers"),
    ("0 < . 1:1(0) ack 1", "window must be specified"),
    ("0 < . 1:1(0) win 1 <...>", "<...>"),
    ("* < . 1:1(0) win 1", "only for outbound"),
    ("0 > . 1:1(0) <bogus 1>", "unknown TCP option"),
    ("0 < udp (10)", "only TCP and ICMP"),
    ("0 close(3)", "expected '='"),
])
def test_errors_name_the_problem(source: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_script(source)
