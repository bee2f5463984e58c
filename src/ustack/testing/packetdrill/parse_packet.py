# SPDX-License-Identifier: MIT
"""Parsing packet events: ``< S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>`` and
``< icmp unreachable port_unreachable [1:1(0)]``."""

from __future__ import annotations

from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.model import (
    Event,
    IcmpPacket,
    TcpOption,
    TcpPacket,
    TimeKind,
    TimeSpec,
)
from ustack.testing.packetdrill.tokens import TokenStream

TCP_FLAG_LETTERS = set("FSRP.EWC")
ECN_WORDS = ("noecn", "ect0", "ect1", "ce", "ect01")


class PacketParser(TokenStream):
    # --- packets -------------------------------------------------------------------------------

    def packet(self, line: int, time: TimeSpec) -> Event:
        inbound = self.next().text == "<"
        ecn = self.ip_info()
        if self.tok.is_word("icmp"):
            return self.icmp(line, time, inbound)
        if self.tok.is_word("udp", "sctp", "gre", "mpls", "ipv4", "ipv6"):
            raise self.error("only TCP and ICMP packets are supported")
        if inbound and (time.kind is TimeKind.ANY or time.end is not None):
            raise ScriptError(line, "'*' and time ranges are only for outbound packets")
        ports = None
        if self.tok.kind == "INT" and self.peek().is_punct(">"):
            sport = self.integer()
            self.next()
            ports = (sport, self.integer())
        flags = self.flags()
        ignore_seq = self.tok.kind == "ELLIPSIS"  # nplab's "...(len)": any sequence number
        if ignore_seq:
            self.next()
            self.expect_punct("(")
            seq, length = 0, self.integer()
            self.expect_punct(")")
        else:
            seq, length = self.seq()
        pkt = TcpPacket(line, time, inbound, flags, seq, length, ecn=ecn, ports=ports,
                        ignore_seq=ignore_seq)
        if self.tok.is_word("ack"):
            self.next()
            pkt.ack = self.integer() & 0xFFFFFFFF
        if self.tok.is_word("win"):
            self.next()
            pkt.window = self.integer()
        elif inbound:
            raise ScriptError(line, "window must be specified for inbound packets")
        if self.tok.is_word("urg"):
            self.next()
            pkt.urgent = self.integer()
        if self.tok.is_punct("<"):
            pkt.options = self.tcp_options()
            if pkt.options is None and inbound:
                raise ScriptError(line, "<...> for TCP options is only for outbound packets")
        return pkt

    def ip_info(self) -> str | None:
        if not (self.tok.is_punct("[") or (self.tok.is_punct("(") and
                                            self.peek().is_word(*ECN_WORDS))):
            return None
        close = "]" if self.next().text == "[" else ")"
        ecn = None
        while not self.tok.is_punct(close):
            tok = self.next()
            if tok.is_word(*ECN_WORDS):
                ecn = tok.text
            elif tok.is_word("tos", "flowlabel", "ttl"):
                self.integer()
            elif not tok.is_punct(","):
                raise self.error("unknown IP attribute", tok)
        self.next()
        return ecn

    def flags(self) -> str:
        tok = self.tok
        if tok.is_punct("-"):
            self.next()
            return ""
        if tok.is_punct("."):
            self.next()
            return "."
        if tok.kind != "WORD" or not set(tok.text) <= TCP_FLAG_LETTERS:
            raise self.error("expected TCP flags")
        self.next()
        if self.tok.is_punct("."):
            self.next()
            return tok.text + "."
        return tok.text

    def seq(self) -> tuple[int, int]:
        start = self.integer()
        self.expect_punct(":")
        end = self.integer()
        self.expect_punct("(")
        length = self.integer()
        self.expect_punct(")")
        if end != start + length:
            raise self.error("inconsistent TCP sequence numbers and payload size")
        return start & 0xFFFFFFFF, length

    def tcp_options(self) -> tuple[TcpOption, ...] | None:
        self.expect_punct("<")
        if self.tok.kind == "ELLIPSIS":
            self.next()
            self.expect_punct(">")
            return None
        options: list[TcpOption] = []
        while True:
            options.append(self.tcp_option())
            if self.tok.is_punct(","):
                self.next()
                continue
            self.expect_punct(">")
            return tuple(options)

    def tcp_option(self) -> TcpOption:
        tok = self.expect_word()
        kind = tok.text
        if kind in ("nop", "eol", "sackOK"):
            return TcpOption(kind)
        if kind in ("mss", "wscale"):
            return TcpOption(kind, (self.integer(),))
        if kind == "TS":
            self.expect_word("val")
            val = self.integer()
            self.expect_word("ecr")
            return TcpOption("TS", (val, self.integer()))
        if kind == "sack":
            edges: list[int] = []
            while self.tok.kind == "INT" and self.peek().is_punct(":"):
                edges.append(self.integer())
                self.next()
                edges.append(self.integer())
            if not edges:
                raise self.error("expected SACK blocks")
            return TcpOption("sack", tuple(edges))
        if kind in ("FO", "FOEXP", "md5"):
            text = self.blob()
            try:
                return TcpOption(kind, data=bytes.fromhex(text))
            except ValueError as exc:
                raise ScriptError(tok.line, f"{kind} value {text!r} is not hex") from exc
        raise self.error("unknown TCP option", tok)

    def icmp(self, line: int, time: TimeSpec, inbound: bool) -> IcmpPacket:
        self.next()
        pkt = IcmpPacket(line, time, inbound, self.expect_word().text)
        if self.tok.kind == "WORD" and not self.tok.is_word("mtu", "id"):
            pkt.code = self.next().text
        if self.tok.is_word("mtu"):
            self.next()
            pkt.mtu = self.integer()
        if self.tok.is_word("id"):
            self.next()
            pkt.echo_id = self.integer()
        if self.tok.is_punct("["):
            self.next()
            if self.tok.is_word("udp", "raw"):
                pkt.protocol = self.next().text
                self.expect_punct("(")
                pkt.echoed_length = self.integer()
                self.expect_punct(")")
            else:
                pkt.echoed_seq, pkt.echoed_length = self.seq()
            self.expect_punct("]")
        return pkt
