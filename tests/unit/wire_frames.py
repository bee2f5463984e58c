# SPDX-License-Identifier: MIT
"""A corpus of valid frames of every kind the stack reads, and ways to damage them.

Built with ustack's own wire builders plus small hand encoders (IPv4 options, IPv6
extension headers, fragments) so the fuzz tests need nothing else. The frames go
from station A to station B (``Endpoints``); checksums are right unless a test
breaks them on purpose. :func:`fix_checksums` recomputes them after a mutation so
mutated frames get past the checksum checks and into the parsers behind them.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from ustack.wire import (
    arp,
    checksum,
    dhcp,
    dhcpv6,
    dns,
    ethernet,
    icmp4,
    icmp6,
    igmp,
    ipv4,
    ipv6,
    mld,
    ndp,
    tcp,
    udp,
)
from ustack.wire.proto import EtherType, IPProto


@dataclass(frozen=True)
class Endpoints:
    """Who talks to whom, and which ports and echo identifiers B has open."""

    mac_a: bytes
    mac_b: bytes
    a4: bytes
    b4: bytes
    a6: bytes
    b6: bytes
    udp_port: int  # bound on B (v4 and v6)
    connected_port: int  # B's UDP socket connected to (a4, peer_port)
    peer_port: int
    ping_ident: int  # B's ICMP echo socket (v4 and v6)

    @property
    def ll_a(self) -> bytes:
        return ipv6.link_local_from_mac(self.mac_a)


def eth(payload: bytes, ethertype: int, dst: bytes, src: bytes,
        tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    out = dst + src
    for tpid, tci in tags:
        out += struct.pack("!HH", tpid, tci)
    return out + struct.pack("!H", ethertype) + payload


def ip4(proto: int, l4: bytes, src: bytes, dst: bytes, *, ident: int = 1, ttl: int = 64,
        options: bytes = b"", more: bool = False, offset: int = 0) -> bytes:
    header = bytearray(ipv4.build(total_length=20 + len(options) + len(l4), protocol=proto,
                                  src=src, dst=dst, ident=ident, ttl=ttl, more_fragments=more,
                                  fragment_offset=offset))
    if options:
        header += options
        header[0] = 0x40 | len(header) // 4
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, checksum.checksum(header))
    return bytes(header) + l4


def ip6(nxt: int, payload: bytes, src: bytes, dst: bytes, hop_limit: int = 64) -> bytes:
    return ipv6.build(payload_length=len(payload), next_header=nxt, src=src, dst=dst,
                      hop_limit=hop_limit) + payload


def udp_l4(sport: int, dport: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    return udp.build_header(sport, dport, payload, src, dst) + payload


def tcp_l4(sport: int, dport: int, flags: int, opts: tcp.TCPOptions, src: bytes, dst: bytes,
           payload: bytes = b"", order: str = "linux", seq: int = 1000, ack: int = 0) -> bytes:
    options = tcp.build_options(opts, order)
    seg = bytearray(20 + len(options))
    tcp.build_header_into(seg, 0, src_port=sport, dst_port=dport, seq=seq, ack=ack,
                          flags=flags, window=65535, options=options)
    tcp.fill_checksum(seg, src, dst, payload)
    return bytes(seg) + payload


def ext(nxt: int, body: bytes) -> bytes:
    """A hop-by-hop / destination options header around ``body``, padded to 8 bytes."""
    gap = -(2 + len(body)) % 8
    body += b"\x00" if gap == 1 else (bytes((1, gap - 2)) + bytes(gap - 2) if gap else b"")
    return bytes((nxt, (2 + len(body)) // 8 - 1)) + body


def routing(nxt: int, segments_left: int, rtype: int = 4) -> bytes:
    return bytes((nxt, 2, rtype, segments_left)) + bytes(4) + bytes(16)


def fragments(payload: bytes, size: int) -> list[tuple[int, bytes, bool]]:
    """(offset, piece, more) for ``payload`` cut into ``size``-byte (8-aligned) pieces."""
    return [(o, payload[o:o + size], o + size < len(payload))
            for o in range(0, len(payload), size)]


def templates(ep: Endpoints) -> list[tuple[str, bytes]]:
    """Valid frames from A to B of every kind the stack parses (about 60)."""
    A, B = ep.mac_a, ep.mac_b
    a4, b4, a6, b6, ll_a = ep.a4, ep.b4, ep.a6, ep.b6, ep.ll_a
    v4, v6 = EtherType.IPV4, EtherType.IPV6
    bcast = ethernet.BROADCAST
    out: list[tuple[str, bytes]] = []

    def add(name: str, frame: bytes) -> None:
        out.append((name, frame))

    # ARP
    req = arp.ARPPacket(arp.OP_REQUEST, A, a4, bytes(6), b4)
    add("arp request", eth(arp.build(req), EtherType.ARP, bcast, A))
    add("arp reply", eth(arp.build(arp.ARPPacket(arp.OP_REPLY, A, a4, B, b4)),
                         EtherType.ARP, B, A))
    add("arp gratuitous", eth(arp.build(arp.ARPPacket(arp.OP_REQUEST, A, a4, bytes(6), a4)),
                              EtherType.ARP, bcast, A))
    add("arp vlan", eth(arp.build(req), EtherType.ARP, bcast, A, ((EtherType.VLAN, 5),)))

    # IPv4: UDP, ICMP, TCP, options, fragments
    def u4(dport: int, data: bytes, sport: int = 4000) -> bytes:
        return ip4(IPProto.UDP, udp_l4(sport, dport, data, a4, b4), a4, b4)

    add("udp4 bound", eth(u4(ep.udp_port, b"hello"), v4, B, A))
    add("udp4 connected", eth(u4(ep.connected_port, b"hi", ep.peer_port), v4, B, A))
    add("udp4 closed port", eth(u4(9999, b"x" * 20), v4, B, A))
    add("udp4 no checksum", eth(ip4(IPProto.UDP, udp.build_header(
        4000, ep.udp_port, b"nocsum", a4, b4, with_checksum=False) + b"nocsum", a4, b4),
        v4, B, A))
    add("udp4 broadcast", eth(ip4(IPProto.UDP, udp_l4(68, ep.udp_port, b"b", a4,
                                                      b"\x0a\0\0\xff"), a4, b"\x0a\0\0\xff"),
                              v4, bcast, A))
    add("udp4 vlan", eth(u4(ep.udp_port, b"tagged"), v4, B, A, ((EtherType.VLAN, 100),)))
    add("udp4 qinq", eth(u4(ep.udp_port, b"qinq"), v4, B, A,
                         ((EtherType.QINQ, 7), (EtherType.VLAN, 100))))
    options = bytes((7, 7, 4)) + bytes(4) + b"\x01\x00"  # record route, NOP, EOL
    add("udp4 ip options", eth(ip4(IPProto.UDP, udp_l4(4000, ep.udp_port, b"opt", a4, b4), a4,
                                   b4, options=options), v4, B, A))
    add("icmp4 echo", eth(ip4(IPProto.ICMP, icmp4.build(8, 0, 0x77, 1, b"ping" * 8), a4, b4),
                          v4, B, A))
    add("icmp4 echo broadcast", eth(ip4(IPProto.ICMP, icmp4.build(8, 0, 0x77, 2, b"p"), a4,
                                        b"\xff" * 4), v4, bcast, A))
    add("icmp4 echo reply", eth(ip4(IPProto.ICMP, icmp4.build(0, 0, ep.ping_ident, 3, b"r"),
                                    a4, b4), v4, B, A))
    sent_udp = ip4(IPProto.UDP, udp_l4(ep.connected_port, ep.peer_port, b"q" * 8, b4, a4), b4, a4)
    add("icmp4 port unreachable", eth(ip4(IPProto.ICMP, icmp4.build(3, 3, 0, 0, sent_udp), a4,
                                          b4), v4, B, A))
    sent_tcp = ip4(IPProto.TCP, tcp_l4(80, 5555, tcp.ACK, tcp.NO_OPTIONS, b4, a4), b4, a4)
    add("icmp4 frag needed", eth(ip4(IPProto.ICMP, icmp4.build(3, 4, 0, 1200, sent_tcp[:28]),
                                     a4, b4), v4, B, A))
    sent_ping = ip4(IPProto.ICMP, icmp4.build(8, 0, ep.ping_ident, 9, b"x"), b4, a4)
    add("icmp4 time exceeded", eth(ip4(IPProto.ICMP, icmp4.build(11, 0, 0, 0, sent_ping), a4,
                                       b4), v4, B, A))
    add("icmp4 param problem", eth(ip4(IPProto.ICMP, icmp4.build(12, 0, 0x1400, 0, sent_udp),
                                       a4, b4), v4, B, A))
    syn = tcp.TCPOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 0),
                         fastopen=b"")
    add("tcp4 syn", eth(ip4(IPProto.TCP, tcp_l4(5555, 80, tcp.SYN, syn, a4, b4), a4, b4),
                        v4, B, A))
    syn_bsd = tcp.TCPOptions(mss=1460, wscale=6, sack_permitted=True, timestamp=(7, 0),
                             fastopen=b"\x11" * 8, fastopen_experimental=True)
    add("tcp4 syn freebsd", eth(ip4(IPProto.TCP, tcp_l4(5556, 80, tcp.SYN, syn_bsd, a4, b4,
                                                        order="freebsd"), a4, b4), v4, B, A))
    sack = tcp.TCPOptions(timestamp=(5, 6), sack_blocks=((100, 200), (300, 400)))
    add("tcp4 ack sack", eth(ip4(IPProto.TCP, tcp_l4(5555, 80, tcp.ACK, sack, a4, b4, b"data",
                                                     ack=77), a4, b4), v4, B, A))
    add("tcp4 rst", eth(ip4(IPProto.TCP, tcp_l4(5555, 80, tcp.RST, tcp.NO_OPTIONS, a4, b4),
                            a4, b4), v4, B, A))
    add("ipv4 unknown protocol", eth(ip4(253, b"\x00" * 12, a4, b4), v4, B, A))
    big = udp_l4(4000, ep.udp_port, bytes(range(256)) * 10, a4, b4)
    for off, piece, more in fragments(big, 1176):
        add(f"udp4 fragment {off}", eth(ip4(IPProto.UDP, piece, a4, b4, ident=0x4242,
                                            more=more, offset=off), v4, B, A))
    echo = icmp4.build(8, 0, 0x99, 1, b"E" * 1500)
    for off, piece, more in fragments(echo, 1000):
        add(f"icmp4 fragment {off}", eth(ip4(IPProto.ICMP, piece, a4, b4, ident=0x4343,
                                             more=more, offset=off), v4, B, A))

    # IPv6: UDP, extension headers, fragments
    def u6(dport: int, data: bytes, sport: int = 4000) -> bytes:
        return udp_l4(sport, dport, data, a6, b6)

    add("udp6 bound", eth(ip6(IPProto.UDP, u6(ep.udp_port, b"hello6"), a6, b6), v6, B, A))
    add("udp6 closed port", eth(ip6(IPProto.UDP, u6(9999, b"closed"), a6, b6), v6, B, A))
    add("udp6 vlan", eth(ip6(IPProto.UDP, u6(ep.udp_port, b"t6"), a6, b6), v6, B, A,
                         ((EtherType.VLAN, 42),)))
    chain = (ext(IPProto.IPV6_OPTS, bytes((5, 2, 0, 0)))  # hop-by-hop: router alert
             + ext(IPProto.IPV6_ROUTE, bytes((1, 4, 0, 0, 0, 0)))  # dest opts: PadN
             + routing(IPProto.UDP, 0) + u6(ep.udp_port, b"chain"))
    add("udp6 ext chain", eth(ip6(IPProto.HOPOPT, chain, a6, b6), v6, B, A))
    for action in range(4):
        opt = bytes((action << 6 | 0x1E, 2, 0xAB, 0xCD))
        body = ext(IPProto.UDP, opt) + u6(ep.udp_port, b"opt")
        add(f"udp6 unknown option {action}", eth(ip6(IPProto.IPV6_OPTS, body, a6, b6), v6, B, A))
        group = ipv6.ALL_NODES
        body = ext(IPProto.UDP, opt) + udp_l4(4000, ep.udp_port, b"m", a6, group)
        add(f"udp6 unknown option {action} multicast",
            eth(ip6(IPProto.HOPOPT, body, a6, group), v6, ethernet.ipv6_multicast_mac(group), A))
    add("ipv6 routing segments left", eth(ip6(IPProto.IPV6_ROUTE, routing(IPProto.UDP, 2)
                                              + u6(ep.udp_port, b"r"), a6, b6), v6, B, A))
    add("ipv6 hop-by-hop not first", eth(ip6(IPProto.IPV6_OPTS, ext(IPProto.HOPOPT, b"")
                                             + ext(IPProto.UDP, b"") + u6(ep.udp_port, b"h"),
                                             a6, b6), v6, B, A))
    add("ipv6 unknown next header", eth(ip6(253, bytes(16), a6, b6), v6, B, A))
    add("ipv6 no next header", eth(ip6(IPProto.IPV6_NONXT, bytes(8), a6, b6), v6, B, A))
    big6 = u6(ep.udp_port, bytes(range(256)) * 12)
    for off, piece, more in fragments(big6, 1232):
        frag = ext(IPProto.IPV6_FRAG, b"") + ipv6.build_fragment_header(
            IPProto.UDP, off, more, 0x5151) + piece
        add(f"udp6 fragment {off}", eth(ip6(IPProto.IPV6_OPTS, frag, a6, b6), v6, B, A))
    atomic = ipv6.build_fragment_header(IPProto.UDP, 0, False, 9) + u6(ep.udp_port, b"atom")
    add("udp6 atomic fragment", eth(ip6(IPProto.IPV6_FRAG, atomic, a6, b6), v6, B, A))
    add("tcp6 syn", eth(ip6(IPProto.TCP, tcp_l4(5555, 80, tcp.SYN, syn, a6, b6), a6, b6),
                        v6, B, A))

    # ICMPv6: echo, errors quoting our packets, NDP
    def i6(kind: int, code: int, rest: int, body: bytes, src: bytes = a6, dst: bytes = b6,
           hop_limit: int = 64, link: bytes = B) -> bytes:
        msg = icmp6.build(kind, code, rest, body, src, dst)
        return eth(ip6(IPProto.ICMPV6, msg, src, dst, hop_limit), v6, link, A)

    add("icmp6 echo", i6(128, 0, 0x770001, b"ping6" * 4))
    add("icmp6 echo multicast", i6(128, 0, 0x770002, b"m", dst=ipv6.ALL_NODES,
                                   link=ethernet.ipv6_multicast_mac(ipv6.ALL_NODES)))
    add("icmp6 echo reply", i6(129, 0, ep.ping_ident << 16 | 3, b"r6"))
    sent6 = ip6(IPProto.UDP, udp_l4(ep.udp_port, ep.peer_port, b"q" * 8, b6, a6), b6, a6)
    add("icmp6 port unreachable", i6(1, 4, 0, sent6))
    add("icmp6 packet too big", i6(2, 0, 1280, sent6))
    add("icmp6 time exceeded", i6(3, 0, 0, ip6(IPProto.ICMPV6, icmp6.build(
        128, 0, ep.ping_ident << 16 | 1, b"x", b6, a6), b6, a6)))
    add("icmp6 param problem", i6(4, 1, 40, sent6))
    quoted_chain = ip6(IPProto.IPV6_OPTS, ext(IPProto.IPV6_FRAG, b"") + ipv6.build_fragment_header(
        IPProto.UDP, 0, True, 3) + udp_l4(ep.udp_port, ep.peer_port, b"z" * 16, b6, a6), b6, a6)
    add("icmp6 error quoting ext chain", i6(1, 1, 0, quoted_chain))
    solicited = ipv6.solicited_node(b6)
    sn_mac = ethernet.ipv6_multicast_mac(solicited)
    add("ndp ns", i6(135, 0, 0, ndp.neighbor_solicitation_body(b6, A), dst=solicited,
                     hop_limit=255, link=sn_mac))
    add("ndp ns dad", i6(135, 0, 0, b6, src=bytes(16), dst=solicited, hop_limit=255, link=sn_mac))
    add("ndp na", i6(136, 0, ndp.neighbor_advertisement_rest(False, True, True),
                     a6 + ndp.link_addr_option(ndp.OPT_TARGET_LINK_ADDR, A), hop_limit=255))
    ra_options = (ndp.link_addr_option(ndp.OPT_SOURCE_LINK_ADDR, A)
                  + ndp.prefix_option(ndp.PrefixInfo(b"\xfd\x00\x00\x00\x00\x00\x00\x07"
                                                     + bytes(8), 64, True, True, 3600, 1800))
                  + ndp.mtu_option(1500) + ndp.rdnss_option((a6,), 600))
    add("ndp ra", i6(134, 0, ndp.router_advertisement_rest(64, False, False, 1800),
                     struct.pack("!II", 0, 0) + ra_options, src=ll_a, dst=ipv6.ALL_NODES,
                     hop_limit=255, link=ethernet.ipv6_multicast_mac(ipv6.ALL_NODES)))
    add("ndp rs", i6(133, 0, 0, ndp.link_addr_option(ndp.OPT_SOURCE_LINK_ADDR, A), src=ll_a,
                     dst=ipv6.ALL_ROUTERS, hop_limit=255,
                     link=ethernet.ipv6_multicast_mac(ipv6.ALL_ROUTERS)))
    add("ndp redirect", i6(137, 0, 0, a6 + b6, src=ll_a, hop_limit=255))
    add("ndp ns vlan", eth(ip6(IPProto.ICMPV6, icmp6.build(
        135, 0, 0, ndp.neighbor_solicitation_body(b6, A), a6, solicited), a6, solicited, 255),
        v6, sn_mac, A, ((EtherType.VLAN, 3),)))

    # Guest services: DHCPv4, DHCPv6 and DNS messages
    discover = dhcp.build(dhcp.Message(dhcp.BOOTREQUEST, 0x1234, A, dhcp.Options(
        message_type=dhcp.DISCOVER, parameter_request_list=(1, 3, 6), client_id=b"\x01" + A),
        flags=dhcp.FLAG_BROADCAST))
    add("dhcp discover", eth(ip4(IPProto.UDP, udp_l4(68, 67, discover, bytes(4), b"\xff" * 4),
                                 bytes(4), b"\xff" * 4), v4, bcast, A))
    solicit = dhcpv6.build(dhcpv6.Message(dhcpv6.SOLICIT, 0x42, dhcpv6.Options(
        client_id=dhcpv6.duid_ll(A), ia_na=(dhcpv6.IANA(1),), oro=(23, 24), elapsed_time=0)))
    servers = dhcpv6.ALL_DHCP_RELAY_AGENTS_AND_SERVERS
    add("dhcpv6 solicit", eth(ip6(IPProto.UDP, udp_l4(546, 547, solicit, ll_a, servers), ll_a,
                                  servers), v6, ethernet.ipv6_multicast_mac(servers), A))
    query = dns.build_query(0x77, dns.Question("www.example.org", dns.TYPE_AAAA, dns.CLASS_IN))
    add("dns query", eth(u4(53, query), v4, B, A))

    # Link layer oddities
    add("unknown ethertype", eth(bytes(46), 0x88CC, B, A))
    add("other host", eth(u4(ep.udp_port, b"not for b"), v4, b"\x02\x99\x99\x99\x99\x99", A))

    # Multicast group management: IGMP queries (v1, v2, v3) and MLD queries (v1, v2)
    router_alert = bytes((0x94, 4, 0, 0))
    systems = igmp.ALL_SYSTEMS
    for name, message in (("v1", igmp.build_v2(igmp.QUERY, bytes(4))),
                          ("v2", igmp.build_v2(igmp.QUERY, bytes(4), 100)),
                          ("v3", igmp.build_v3_query(bytes(4), 100, (a4,)))):
        add(f"igmp {name} query", eth(ip4(IPProto.IGMP, message, a4, systems, ttl=1,
                                          options=router_alert),
                                      v4, ethernet.ipv4_multicast_mac(systems), A))
    nodes = ipv6.ALL_NODES
    for name, message in (("v1", mld.build_v1(mld.QUERY, bytes(16), ll_a, nodes, 1000)),
                          ("v2", mld.build_v2_query(bytes(16), ll_a, nodes, 1000, (a6,)))):
        add(f"mld {name} query", eth(ip6(IPProto.HOPOPT, ext(IPProto.ICMPV6, bytes((5, 2, 0, 0)))
                                         + message, ll_a, nodes, 1),
                                     v6, ethernet.ipv6_multicast_mac(nodes), A))
    return out


# --- mutations --------------------------------------------------------------------------

def _l3_offset(frame: bytes | bytearray) -> tuple[int, int] | None:
    try:
        hdr = ethernet.parse(frame)
    except Exception:
        return None
    return hdr.ethertype, hdr.length


def fix_checksums(frame: bytearray) -> None:
    """Recompute the IPv4 header and the transport checksums where the headers allow."""
    found = _l3_offset(frame)
    if found is None:
        return
    ethertype, l3 = found
    if ethertype == EtherType.IPV4 and len(frame) >= l3 + 20:
        hlen = (frame[l3] & 0x0F) * 4
        if hlen < 20 or l3 + hlen > len(frame):
            return
        struct.pack_into("!H", frame, l3 + 10, 0)
        struct.pack_into("!H", frame, l3 + 10, checksum.checksum(frame[l3:l3 + hlen]))
        total = struct.unpack_from("!H", frame, l3 + 2)[0]
        frag = struct.unpack_from("!H", frame, l3 + 6)[0]
        if frag & 0x3FFF or total > len(frame) - l3 or total < hlen:
            return
        src, dst = bytes(frame[l3 + 12:l3 + 16]), bytes(frame[l3 + 16:l3 + 20])
        _fix_transport(frame, frame[l3 + 9], l3 + hlen, l3 + total, src, dst)
    elif ethertype == EtherType.IPV6 and len(frame) >= l3 + 40:
        plen = struct.unpack_from("!H", frame, l3 + 4)[0]
        end = min(len(frame), l3 + 40 + plen)
        nxt, offset = frame[l3 + 6], l3 + 40
        while nxt in (IPProto.HOPOPT, IPProto.IPV6_OPTS, IPProto.IPV6_ROUTE) \
                and offset + 8 <= end:
            nxt, offset = frame[offset], offset + (frame[offset + 1] + 1) * 8
        if offset <= end:
            src, dst = bytes(frame[l3 + 8:l3 + 24]), bytes(frame[l3 + 24:l3 + 40])
            _fix_transport(frame, nxt, offset, end, src, dst)


def _fix_transport(frame: bytearray, proto: int, start: int, end: int, src: bytes,
                   dst: bytes) -> None:
    fields: dict[int, int] = {IPProto.UDP: 6, IPProto.TCP: 16, IPProto.ICMP: 2, IPProto.ICMPV6: 2}
    field = fields.get(proto)
    if field is None or end - start < field + 2:
        return
    struct.pack_into("!H", frame, start + field, 0)
    initial = 0 if proto == IPProto.ICMP else checksum.pseudo_header_sum(src, dst, proto,
                                                                          end - start)
    value = checksum.checksum(frame[start:end], initial)
    if proto == IPProto.UDP and value == 0:
        value = 0xFFFF
    struct.pack_into("!H", frame, start + field, value)


class Mutator:
    """Turns the corpus into an endless, seeded stream of damaged and intact frames."""

    def __init__(self, corpus: list[tuple[str, bytes]], seed: int) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.kinds: dict[str, int] = {}

    def next(self) -> tuple[str, bytes]:
        rng = self.rng
        name, frame = self.corpus[rng.randrange(len(self.corpus))]
        r = rng.random()
        if r < 0.06:
            kind, out = "random", rng.randbytes(rng.randrange(80))
        elif r < 0.12:
            # a valid Ethernet header in front of random bytes, so they reach a parser
            kind = "random payload"
            out = frame[:14] + rng.randbytes(rng.randrange(120))
        elif r < 0.24:
            kind, out = "truncated", frame[:rng.randrange(len(frame))]
        elif r < 0.45:
            kind = "bit flips"
            buf = bytearray(frame)
            for _ in range(rng.randrange(1, 5)):
                bit = rng.randrange(12 * 8, len(buf) * 8)
                buf[bit // 8] ^= 0x80 >> (bit % 8)
            out = bytes(buf)
        elif r < 0.85:
            kind = "bytes + checksums"
            buf = bytearray(frame)
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(14, len(buf))
                old = buf[at]
                buf[at] = rng.choice((0, 0xFF, rng.randrange(256), old ^ 1, (old + 1) & 0xFF))
            fix_checksums(buf)
            out = bytes(buf)
        elif r < 0.93:
            kind = "splice + checksums"
            buf = bytearray(frame)
            at = rng.randrange(14, len(buf))
            if rng.random() < 0.5:
                del buf[at:at + rng.randrange(1, 16)]
            else:
                buf[at:at] = rng.randbytes(rng.randrange(1, 16))
            fix_checksums(buf)
            out = bytes(buf)
        else:
            kind, out = "intact", frame
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return f"{kind}: {name}", out
