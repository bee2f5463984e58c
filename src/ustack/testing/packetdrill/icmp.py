# SPDX-License-Identifier: MIT
"""Inbound ICMP errors as packetdrill writes them (its icmp_packet.c names):
``< icmp unreachable port_unreachable [1:1(0)]``, ``< icmp unreachable frag_needed
mtu 1200 [...]`` (IPv4), ``< icmp packet_too_big mtu 1280 [...]`` (IPv6)."""

from __future__ import annotations

from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.model import IcmpPacket
from ustack.testing.packetdrill.packets import ip_packet
from ustack.wire import icmp4, icmp6, ipv4, ipv6
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto

_ICMP4_TYPES = {"echo_reply": 0, "unreachable": 3, "source_quench": 4, "redirect": 5,
                "echo_request": 8, "time_exceeded": 11, "parameter_problem": 12}
_ICMP4_UNREACH = {"net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2,
                  "port_unreachable": 3, "frag_needed": 4, "source_route_failed": 5,
                  "net_unknown": 6, "host_unknown": 7, "source_host_isolated": 8,
                  "net_prohibited": 9, "host_prohibited": 10, "net_unreachable_for_tos": 11,
                  "host_unreachable_for_tos": 12, "packet_filtered": 13,
                  "precedence_violation": 14, "precedence_cutoff": 15}
_ICMP6_TYPES = {"unreachable": 1, "packet_too_big": 2, "time_exceeded": 3,
                "parameter_problem": 4, "echo_request": 128, "echo_reply": 129}
_ICMP6_CODES = {"unreachable": {"net_unreachable": 0, "no_route": 0, "admin_prohibited": 1,
                                "not_neighbour": 2, "address_unreachable": 3,
                                "port_unreachable": 4},
                "time_exceeded": {"exceeded_hop_limit": 0, "exceeded_frag_time": 1},
                "parameter_problem": {"header_field": 0, "unknown_next_header": 1,
                                      "unknown_option": 2}}


def _type_code(pkt: IcmpPacket, v6: bool) -> tuple[int, int]:
    def number(text: str, prefix: str, table: dict[str, int], what: str) -> int:
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return int(text[len(prefix):])
        if text not in table:
            raise ScriptError(pkt.line, f"unknown ICMP {what} {text!r}")
        return table[text]

    kind = number(pkt.icmp_type, "type_", _ICMP6_TYPES if v6 else _ICMP4_TYPES, "type")
    codes = _ICMP6_CODES.get(pkt.icmp_type, {}) if v6 else (
        _ICMP4_UNREACH if pkt.icmp_type == "unreachable" else {})
    code = 0 if pkt.code is None else number(pkt.code, "code_", codes, "code")
    return kind, code


def icmp_packet(pkt: IcmpPacket, src: bytes, dst: bytes, quoted_l4: bytes) -> bytes:
    """An ICMP error from ``src`` to ``dst`` quoting an IP packet that carried
    ``quoted_l4`` (its first bytes) from ``dst`` to ``src``."""
    v6 = len(src) == 16
    kind, code = _type_code(pkt, v6)
    proto = {"tcp": IPProto.TCP, "udp": IPProto.UDP}.get(pkt.protocol, IPProto.TCP)
    total = wire.MIN_HEADER_LEN + pkt.echoed_length
    if v6:
        quoted = ipv6.build(payload_length=total, next_header=proto, src=dst, dst=src) + \
            quoted_l4
        rest = pkt.mtu if pkt.mtu is not None else (pkt.echo_id << 16)
        body = icmp6.build(kind, code, rest, quoted, src, dst)
        return ip_packet(src, dst, IPProto.ICMPV6, body)
    quoted = ipv4.build(total_length=20 + total, protocol=proto, src=dst, dst=src) + quoted_l4
    hi, lo = (pkt.echo_id, 0) if pkt.mtu is None else (0, pkt.mtu)
    return ip_packet(src, dst, IPProto.ICMP, icmp4.build(kind, code, hi, lo, quoted))
