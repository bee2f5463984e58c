# SPDX-License-Identifier: MIT
"""IGMP and MLD as a host, and multicast UDP sockets, on two stacks over a channel.

The emitted frames are the oracle: each is decoded (Ethernet, IP header, then the
IGMP / MLD message) and its bytes asserted. Queries are injected as a router would
send them. Everything runs on the virtual clock.
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import NamedTuple

import pytest

from ustack.socket import DatagramSocket
from ustack.testing.pair import A4, B4, StackPair, make_pair
from ustack.wire import ethernet, group_records, igmp, ipv4, ipv6, mld
from ustack.wire.errors import ParseError
from ustack.wire.proto import EtherType, IPProto

GROUP4 = "239.1.2.3"
GROUP6 = "ff12::1234"
G4 = socket.inet_aton(GROUP4)
G6 = socket.inet_pton(socket.AF_INET6, GROUP6)
PORT = 5000


@pytest.fixture
def pair() -> StackPair:
    """The usual pair, run past its start-up reports (solicited-node groups, RFC 3810 6.1)."""
    made = make_pair()
    made.run(2.0)
    return made


class Sent(NamedTuple):
    """One IGMP or MLD packet a stack wrote, decoded."""

    time: float
    dst_mac: bytes
    src: bytes
    dst: bytes
    hop_limit: int
    router_alert: bool
    message: igmp.Message | mld.Message


def decode(frame: bytes, time: float) -> Sent | None:
    eth = ethernet.parse(frame)
    body = frame[eth.length:]
    if eth.ethertype == EtherType.IPV4:
        hdr = ipv4.parse(body)
        if hdr.protocol != IPProto.IGMP:
            return None
        alert = body[20:hdr.header_length] == igmp.ROUTER_ALERT
        return Sent(time, eth.dst, hdr.src, hdr.dst, hdr.ttl, alert,
                    igmp.parse(body[hdr.header_length:hdr.total_length]))
    if eth.ethertype == EtherType.IPV6:
        hdr6 = ipv6.parse(body)
        if hdr6.next_header != IPProto.HOPOPT or body[40] != IPProto.ICMPV6:
            return None
        message = body[48:40 + hdr6.payload_length]
        if message[0] not in mld.TYPES:
            return None
        alert = body[40:48] == mld.HOP_BY_HOP
        return Sent(time, eth.dst, hdr6.src, hdr6.dst, hdr6.hop_limit, alert,
                    mld.parse(message, hdr6.src, hdr6.dst))
    return None


class Recorder:
    """The IGMP/MLD packets one side writes, with the virtual time each left."""

    def __init__(self, pair: StackPair, side: str = "a") -> None:
        self.pair = pair
        self.link = pair.link_a if side == "a" else pair.link_b
        self.sent: list[Sent] = []
        self.link.written = []

    def poll(self) -> list[Sent]:
        frames, self.link.written = self.link.written or [], []
        now = self.pair.clock.now()
        for frame in frames:
            got = decode(frame, now)
            if got is not None:
                self.sent.append(got)
        return self.sent

    def run(self, seconds: float, step: float = 0.01) -> list[Sent]:
        """Advance the clock in small steps, noting when each packet left."""
        end = self.pair.clock.now() + seconds
        while self.pair.clock.now() < end - 1e-9:
            self.pair.clock.advance(min(step, end - self.pair.clock.now()))
            self.poll()
        return self.sent

    def take(self) -> list[Sent]:
        self.poll()
        out, self.sent = self.sent, []
        return out


def udp4(pair: StackPair, side: str = "b") -> DatagramSocket:
    stack = pair.a if side == "a" else pair.b
    sock: DatagramSocket = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return sock


def udp6(pair: StackPair, side: str = "b") -> DatagramSocket:
    stack = pair.a if side == "a" else pair.b
    sock: DatagramSocket = stack.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    return sock


def mreq(group: bytes, iface: str = "0.0.0.0") -> bytes:
    return group + socket.inet_aton(iface)


def join4(sock: DatagramSocket, iface: str = "0.0.0.0") -> None:
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(G4, iface))


def inject_query4(pair: StackPair, message: bytes, dst: bytes = igmp.ALL_SYSTEMS) -> None:
    """A query from b's address, as a querier on the link sends it, into a."""
    packet = igmp.build_packet(socket.inet_aton(B4), dst, message, 1)
    frame = ethernet.build(ethernet.ipv4_multicast_mac(dst), pair.link_b.link_address,
                           EtherType.IPV4) + packet
    pair.link_a.inject(frame)


ROUTER_LL = bytes.fromhex("fe800000000000000000000000000099")


def inject_query6(pair: StackPair, message: bytes, dst: bytes = mld.ALL_NODES,
                  src: bytes = ROUTER_LL, hop_limit: int = 1) -> None:
    packet = bytearray(mld.build_packet(src, dst, message))
    packet[7] = hop_limit
    frame = ethernet.build(ethernet.ipv6_multicast_mac(dst), pair.link_b.link_address,
                           EtherType.IPV6) + bytes(packet)
    pair.link_a.inject(frame)


def records(sent: list[Sent]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for s in sent:
        if isinstance(s.message, (igmp.V3Report, mld.V2Report)):
            out += [(r.type, r.group) for r in s.message.records]
    return out


def settled_member(pair: StackPair, version: int) -> tuple[DatagramSocket, Recorder]:
    """A socket on a that joined G4 (``version`` 4) or G6 (6), its join reports sent and
    forgotten: the start of every query test."""
    sock = udp4(pair, "a") if version == 4 else udp6(pair, "a")
    if version == 4:
        join4(sock)
    else:
        join6(sock, pair)
    rec = Recorder(pair)
    rec.run(2.0)
    rec.take()
    return sock, rec


# --- IGMPv3: joins and leaves (RFC 3376 5.1) -----------------------------------------------


def test_rfc3376_5_1_join_reports_to_exclude_now_and_once_more(pair: StackPair) -> None:
    rec = Recorder(pair)
    sock = udp4(pair, "a")
    join4(sock)
    first = rec.poll()
    assert len(first) == 1  # sent at once, before any time passes
    report = first[0]
    assert report.dst == igmp.V3_ROUTERS and report.dst_mac == bytes.fromhex("01005e000016")
    assert report.src == socket.inet_aton(A4)
    assert report.hop_limit == 1 and report.router_alert
    assert report.message == igmp.V3Report((igmp.GroupRecord(group_records.CHANGE_TO_EXCLUDE, G4),))
    sent = rec.run(1.0)
    assert [s.message for s in sent] == [report.message] * 2  # Robustness Variable 2
    assert sent[1].time - sent[0].time <= 1.0  # within the Unsolicited Report Interval
    assert rec.run(30.0) == sent  # and no more
    assert pair.a.stats["igmp.tx_state_change"] == 2


def test_leave_reports_to_include_and_memberships_are_reference_counted(
        pair: StackPair) -> None:
    first, second = udp4(pair, "a"), udp4(pair, "a")
    rec = Recorder(pair)
    join4(first)
    join4(second)
    rec.run(2.0)
    assert records(rec.take()) == [(group_records.CHANGE_TO_EXCLUDE, G4)] * 2  # the second: no news
    first.close()
    assert rec.run(2.0) == []  # one member is left
    assert G4 in pair.nic_a.multicast_groups
    second.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq(G4))
    sent = rec.run(2.0)
    assert records(sent) == [(group_records.CHANGE_TO_INCLUDE, G4)] * 2
    assert G4 not in pair.nic_a.multicast_groups
    second.close()
    assert rec.run(2.0) == sent


def test_socket_errors_follow_linux(pair: StackPair) -> None:
    sock = udp4(pair, "a")
    with pytest.raises(OSError) as exc:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        mreq(socket.inet_aton("10.0.0.9")))
    assert exc.value.errno == errno.EINVAL  # not a multicast address
    join4(sock)
    with pytest.raises(OSError) as exc:
        join4(sock)
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as exc:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
                        mreq(socket.inet_aton("239.9.9.9")))
    assert exc.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(OSError) as exc:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        mreq(socket.inet_aton("239.9.9.9"), "10.9.9.9"))
    assert exc.value.errno == errno.EADDRNOTAVAIL  # no interface with that address
    with pytest.raises(OSError) as exc:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 256)
    assert exc.value.errno == errno.EINVAL


def test_ip_mreqn_names_the_interface_by_index(pair: StackPair) -> None:
    sock = udp4(pair, "a")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    struct.pack("=4s4si", G4, bytes(4), pair.nic_a.id))
    assert G4 in pair.nic_a.multicast_groups
    with pytest.raises(OSError) as exc:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        struct.pack("=4s4si", socket.inet_aton("239.0.0.7"), bytes(4), 77))
    assert exc.value.errno == errno.ENODEV


# --- IGMPv3: queries (RFC 3376 5.2) --------------------------------------------------------


def test_general_query_answered_within_max_resp_time_without_all_systems(
        pair: StackPair) -> None:
    _member, rec = settled_member(pair, 4)
    start = pair.clock.now()
    inject_query4(pair, igmp.build_v3_query(igmp.ANY, 50))  # Max Resp Time 5.0 s
    sent = rec.run(6.0)
    assert len(sent) == 1
    assert 0 <= sent[0].time - start <= 5.0 + 0.01
    assert sent[0].message == igmp.V3Report((igmp.GroupRecord(group_records.MODE_IS_EXCLUDE, G4),))
    assert pair.a.stats["igmp.rx_v3_query"] == 1


def test_group_specific_queries_only_for_joined_groups(pair: StackPair) -> None:
    _member, rec = settled_member(pair, 4)
    other = socket.inet_aton("239.7.7.7")
    inject_query4(pair, igmp.build_v3_query(other, 10), dst=other)  # not joined: ignored
    inject_query4(pair, igmp.build_v3_query(G4, 10), dst=G4)
    sent = rec.run(1.5)
    assert records(sent) == [(group_records.MODE_IS_EXCLUDE, G4)]
    source = socket.inet_aton("10.0.0.77")
    inject_query4(pair, igmp.build_v3_query(G4, 10, (source,)), dst=G4)
    (answer,) = rec.run(1.5)[1:]
    # RFC 3376 5.2: EXCLUDE({}) wants every source asked about: IS_IN(those sources)
    assert answer.message == igmp.V3Report((igmp.GroupRecord(group_records.MODE_IS_INCLUDE, G4,
                                                             (source,)),))


def test_query_with_a_wrong_destination_or_checksum_is_dropped(pair: StackPair) -> None:
    _member, rec = settled_member(pair, 4)
    inject_query4(pair, igmp.build_v3_query(igmp.ANY, 10), dst=G4)  # general, not to 224.0.0.1
    bad = bytearray(igmp.build_v3_query(igmp.ANY, 10))
    bad[-1] ^= 0xFF
    inject_query4(pair, bytes(bad))
    assert rec.run(2.0) == []
    assert pair.a.stats["igmp.drop.bad_address"] == 1
    assert pair.a.stats["igmp.drop.bad_checksum"] == 1


# --- compatibility modes (RFC 3376 7.2.1) --------------------------------------------------


def test_rfc3376_7_2_1_v2_querier_switches_to_v2_reports_and_leave(pair: StackPair) -> None:
    sock, rec = settled_member(pair, 4)
    inject_query4(pair, igmp.build_v2(igmp.QUERY, igmp.ANY, 100))  # v2 general, 10 s
    sent = rec.run(10.5)
    assert [(s.message, s.dst) for s in sent] == [(igmp.Report(igmp.V2_REPORT, G4), G4)]
    assert sent[0].dst_mac == ethernet.ipv4_multicast_mac(G4) and sent[0].router_alert
    rec.take()
    other = udp4(pair, "a")
    g2 = socket.inet_aton("239.5.5.5")
    other.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(g2))
    joined = rec.run(11.0)
    assert [s.message for s in joined] == [igmp.Report(igmp.V2_REPORT, g2)] * 2
    rec.take()
    sock.close()  # we sent the last report for G4: the leave goes to all-routers
    left = rec.run(1.0)
    assert [(s.message, s.dst) for s in left] == [(igmp.Report(igmp.V2_LEAVE, G4),
                                                   igmp.ALL_ROUTERS)]
    # the Older Version Querier Present timer (2 * 125 + 10 s) runs out: back to v3
    rec.run(260.0)
    rec.take()
    other.close()
    assert records(rec.run(2.0)) == [(group_records.CHANGE_TO_INCLUDE, g2)] * 2


def test_v1_querier_means_v1_reports_and_no_leave(pair: StackPair) -> None:
    sock, rec = settled_member(pair, 4)
    inject_query4(pair, igmp.build_v2(igmp.QUERY, igmp.ANY, 0))  # code 0: v1 (10 s)
    sent = rec.run(10.5)
    assert [s.message for s in sent] == [igmp.Report(igmp.V1_REPORT, G4)]
    rec.take()
    sock.close()
    assert rec.run(2.0) == []


def test_v2_report_from_another_member_suppresses_ours(pair: StackPair) -> None:
    _member, rec = settled_member(pair, 4)
    inject_query4(pair, igmp.build_v2(igmp.QUERY, igmp.ANY, 100))
    inject_query4(pair, igmp.build_v2(igmp.V2_REPORT, G4), dst=G4)  # someone answered
    assert rec.run(11.0) == []
    assert pair.a.stats["igmp.report_suppressed"] == 1


# --- MLDv2 (RFC 3810) ----------------------------------------------------------------------


def join6(sock: DatagramSocket, pair: StackPair, group: bytes = G6) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                    struct.pack("=16sI", group, pair.nic_a.id if sock._ep.stack is pair.a
                                else pair.nic_b.id))


def link_local(pair: StackPair) -> bytes:
    return ipv6.link_local_from_mac(pair.link_a.link_address)


def test_rfc3810_join_reports_from_link_local_with_hop_by_hop_router_alert(
        pair: StackPair) -> None:
    rec = Recorder(pair)
    member = udp6(pair, "a")
    join6(member, pair)
    sent = rec.run(1.0)
    assert len(sent) == 2
    report = sent[0]
    assert report.dst == mld.V2_ROUTERS and report.dst_mac == bytes.fromhex("333300000016")
    assert report.src == link_local(pair) and report.hop_limit == 1 and report.router_alert
    assert report.message == mld.V2Report((mld.AddressRecord(group_records.CHANGE_TO_EXCLUDE, G6),))
    assert sent[1].message == report.message


def test_solicited_node_groups_are_reported_and_all_nodes_never(pair: StackPair) -> None:
    rec = Recorder(pair)
    addr = socket.inet_pton(socket.AF_INET6, "fd00::7:77")
    pair.a.add_address("eth0", "fd00::7:77/64")
    solicited = ipv6.solicited_node(addr)
    assert records(rec.run(1.0)) == [(group_records.CHANGE_TO_EXCLUDE, solicited)] * 2
    rec.take()
    inject_query6(pair, mld.build_v2_query(mld.ANY, ROUTER_LL, mld.ALL_NODES, 1000))
    (answer,) = rec.run(1.5)
    groups = {g for _t, g in records([answer])}
    assert solicited in groups
    assert ipv6.solicited_node(link_local(pair)) in groups
    assert mld.ALL_NODES not in groups and ipv6.ALL_NODES in pair.nic_a.multicast_groups
    rec.take()
    pair.a.remove_address("fd00::7:77")
    assert records(rec.run(1.0)) == [(group_records.CHANGE_TO_INCLUDE, solicited)] * 2


def test_mld_queries_must_come_link_local_with_hop_limit_1(pair: StackPair) -> None:
    _member, rec = settled_member(pair, 6)
    query = mld.build_v2_query(G6, ROUTER_LL, G6, 500)
    inject_query6(pair, query, dst=G6, hop_limit=64)
    global_src = socket.inet_pton(socket.AF_INET6, "fd00::99")
    inject_query6(pair, mld.build_v2_query(G6, global_src, G6, 500), dst=G6, src=global_src)
    assert rec.run(1.0) == []
    assert pair.a.stats["mld.drop.bad_address"] == 2
    inject_query6(pair, query, dst=G6)
    assert records(rec.run(1.0)) == [(group_records.MODE_IS_EXCLUDE, G6)]


def test_rfc3810_5_2_13_reports_from_unspecified_are_valid_not_drops(pair: StackPair) -> None:
    """A neighbour still doing DAD (the Linux kernel at start-up) reports from ::.
    Reports go to ff02::16, which only a promiscuous NIC (the guest gateway's) takes in."""
    pair.nic_a.promiscuous = True
    report = mld.build_v2_report([mld.AddressRecord(group_records.CHANGE_TO_EXCLUDE, G6)],
                                 ipv6.ANY)
    inject_query6(pair, report, dst=mld.V2_ROUTERS, src=ipv6.ANY)
    assert pair.a.stats["mld.rx_ignored"] == 1
    assert pair.a.stats["drops"] == 0
    # a query from :: is still not acceptable (RFC 3810 5.1.14)
    inject_query6(pair, mld.build_v2_query(G6, ipv6.ANY, G6, 500), dst=G6, src=ipv6.ANY)
    assert pair.a.stats["mld.drop.bad_address"] == 1


def test_rfc3810_8_2_1_mldv1_querier_means_v1_reports_and_done(pair: StackPair) -> None:
    sock, rec = settled_member(pair, 6)
    inject_query6(pair, mld.build_v1(mld.QUERY, mld.ANY, ROUTER_LL, mld.ALL_NODES, 2000))
    sent = rec.run(2.5)
    mine = [s for s in sent if s.dst == G6]
    assert [s.message for s in mine] == [mld.Report(mld.V1_REPORT, G6)]
    assert all(isinstance(s.message, mld.Report) for s in sent)  # no v2 reports any more
    rec.take()
    sock.close()
    (done,) = rec.run(1.0)
    assert (done.message, done.dst) == (mld.Report(mld.V1_DONE, G6), mld.ALL_ROUTERS)


# --- multicast UDP -------------------------------------------------------------------------


def test_datagram_to_a_group_reaches_every_joined_socket_on_the_port(pair: StackPair) -> None:
    receivers = []
    for _ in range(2):
        sock = udp4(pair, "b")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", PORT))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(G4))
        receivers.append(sock)
    bound_to_group = udp4(pair, "b")
    bound_to_group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    with pytest.raises(OSError) as exc:
        bound_to_group.bind((GROUP4, PORT))  # the others have SO_REUSEADDR only (as Linux)
    assert exc.value.errno == errno.EADDRINUSE
    bound_to_group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound_to_group.bind((GROUP4, PORT))
    sender = udp4(pair, "a")
    pair.link_a.written = []
    sender.sendto(b"to the group", (GROUP4, PORT))
    pair.run(0.01)
    frames = [f for f in pair.link_a.written or [] if f[12:14] == b"\x08\x00"]
    assert len(frames) == 1  # no ARP: the MAC comes from the group (RFC 1112 6.4)
    assert frames[0][:6] == bytes.fromhex("01005e010203")
    assert ipv4.parse(frames[0][14:]).ttl == 1  # the multicast TTL default
    for sock in [*receivers, bound_to_group]:
        data, (addr, _port) = sock.recvfrom(100, socket.MSG_DONTWAIT)
        assert data == b"to the group" and addr == A4
    receivers[0].close()
    receivers[1].close()
    bound_to_group.close()
    assert G4 not in pair.nic_b.multicast_groups  # memberships dropped on close
    pair.run(2.0)  # b's leave reports
    before = pair.nic_b.stats["multicast_filtered"]
    sender.sendto(b"nobody", (GROUP4, PORT))
    pair.run(0.01)
    assert pair.nic_b.stats["multicast_filtered"] == before + 1  # the link filter
    assert pair.b.stats["udp.rx"] == 1


def test_ip_multicast_loop_and_ttl(pair: StackPair) -> None:
    member = udp4(pair, "a")
    member.bind(("0.0.0.0", PORT))
    join4(member)
    sender = udp4(pair, "a")
    sender.sendto(b"looped", (GROUP4, PORT))
    pair.run(0.01)
    assert member.recvfrom(100, socket.MSG_DONTWAIT)[0] == b"looped"
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    assert sender.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 0
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 7))
    pair.link_a.written = []
    sender.sendto(b"not looped", (GROUP4, PORT))
    pair.run(0.01)
    with pytest.raises(BlockingIOError):
        member.recvfrom(100, socket.MSG_DONTWAIT)
    (frame,) = [f for f in pair.link_a.written or [] if f[12:14] == b"\x08\x00"]
    assert ipv4.parse(frame[14:]).ttl == 7
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    pair.link_a.written = []
    sender.sendto(b"host only", (GROUP4, PORT))
    pair.run(0.01)
    assert member.recvfrom(100, socket.MSG_DONTWAIT)[0] == b"host only"
    assert [f for f in pair.link_a.written or [] if f[12:14] == b"\x08\x00"] == []


def test_ipv6_multicast_delivery_with_multicast_if_and_hops(pair: StackPair) -> None:
    rx = udp6(pair, "b")
    rx.bind(("::", PORT))
    join6(rx, pair)
    tx = udp6(pair, "a")
    tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, pair.nic_a.id)
    tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 3)
    pair.link_a.written = []
    tx.sendto(b"six", (GROUP6, PORT))
    pair.run(0.01)
    data, source = rx.recvfrom(100, socket.MSG_DONTWAIT)
    assert data == b"six"
    udp_frames = [f for f in pair.link_a.written or []
                  if f[12:14] == b"\x86\xdd" and f[14 + 6] == IPProto.UDP]
    (frame,) = udp_frames
    assert frame[:6] == bytes.fromhex("333300001234")  # RFC 2464 7
    hdr = ipv6.parse(frame[14:])
    assert hdr.hop_limit == 3 and hdr.src == link_local(pair)  # link scope: link-local
    assert source[0] == socket.inet_ntop(socket.AF_INET6, link_local(pair))


def test_ip_multicast_all_off_limits_a_socket_to_its_own_groups(pair: StackPair) -> None:
    joined, other = udp4(pair, "b"), udp4(pair, "b")
    for sock in (joined, other):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", PORT))
    join4(joined)
    other.setsockopt(socket.IPPROTO_IP, 49, 0)  # IP_MULTICAST_ALL
    udp4(pair, "a").sendto(b"g", (GROUP4, PORT))
    pair.run(0.01)
    assert joined.recvfrom(10, socket.MSG_DONTWAIT)[0] == b"g"
    with pytest.raises(BlockingIOError):
        other.recvfrom(10, socket.MSG_DONTWAIT)


def test_nic_removal_and_close_leave_no_timers_behind() -> None:
    pair = make_pair()
    sock = udp4(pair, "a")
    join4(sock)
    pair.a.remove_nic(pair.nic_a.id)
    sock.close()
    pair.run(300.0)  # any timer still armed would fire here and must not raise


def test_unparseable_report_bytes_do_not_escape() -> None:
    with pytest.raises(ParseError):
        igmp.parse(b"\x22\x00")
