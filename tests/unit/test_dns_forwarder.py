# SPDX-License-Identifier: MIT
"""The DNS forwarder on the gateway, with a fake upstream on the virtual clock: ID
remapping, answer validation, timeouts and failover, SERVFAIL without upstream,
bounded pending queries, and malformed queries dropped and counted."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from tests.unit.guest_link import GuestLink, make_guest_link
from ustack.forward.dns import Address
from ustack.transport.udp import UDPEndpoint
from ustack.wire import dns as wire

GW4 = ipaddress.ip_address("10.0.2.2").packed
GW6 = ipaddress.ip_address("fd00:0:0:2::2").packed
UPSTREAM: Address = ("192.0.2.53", 53)
SECOND: Address = ("2001:db8::53", 53)


def setup(servers: list[Address] | None = None) -> tuple[GuestLink, UDPEndpoint]:
    link = make_guest_link(dns_servers=servers)
    link.guest.add_address(link.nic_guest.id, "10.0.2.100/24")
    link.guest.add_address(link.nic_guest.id, "fd00:0:0:2::100/64", dad=False)
    link.run(1.0)
    ep = UDPEndpoint(link.guest, 4)
    ep.bind(bytes(4), 5353)
    return link, ep


def query(ident: int = 0x1111, name: str = "example.org", qtype: str = "A") -> bytes:
    return bytes(DNS(id=ident, rd=1, qd=DNSQR(qname=name, qtype=qtype)))


def answer_to(upstream_query: bytes, address: str = "192.0.2.1") -> bytes:
    asked = DNS(upstream_query)
    return bytes(DNS(id=asked.id, qr=1, rd=1, ra=1, qd=asked.qd,
                     an=DNSRR(rrname=asked.qd[0].qname, type="A", rdata=address)))


def received(ep: UDPEndpoint) -> list[DNS]:
    out = []
    while ep.queue:
        data, _source = ep.recvfrom()
        out.append(DNS(data))
    return out


def test_query_is_relayed_with_a_new_id_and_the_answer_comes_back() -> None:
    link, ep = setup()
    ep.sendto(query(0x1111), (GW4, 53))
    link.run(0.1)
    [(sent, server)] = link.upstream.sent
    assert server == UPSTREAM
    upstream_id = int.from_bytes(sent[:2], "big")
    assert upstream_id != 0x1111
    assert sent[2:] == query(0x1111)[2:]  # only the ID changed
    link.upstream.reply(answer_to(sent), UPSTREAM)
    link.run(0.1)
    [reply] = received(ep)
    assert reply.id == 0x1111 and reply.qr == 1
    assert reply.an[0].rdata == "192.0.2.1"
    assert link.dns.pending == {}
    stats = link.gateway.stats
    assert (stats["dns.rx_query"], stats["dns.tx_upstream"], stats["dns.rx_upstream"],
            stats["dns.tx_answer"]) == (1, 1, 1, 1)


def test_same_guest_id_from_two_ports_gets_two_upstream_ids() -> None:
    link, ep = setup()
    other = UDPEndpoint(link.guest, 4)
    other.bind(bytes(4), 5354)
    ep.sendto(query(0x2222, "a.example"), (GW4, 53))
    other.sendto(query(0x2222, "b.example"), (GW4, 53))
    link.run(0.1)
    (first, _), (second, _) = link.upstream.sent
    assert first[:2] != second[:2]
    link.upstream.reply(answer_to(second, "192.0.2.2"), UPSTREAM)  # out of order
    link.upstream.reply(answer_to(first, "192.0.2.1"), UPSTREAM)
    link.run(0.1)
    [a] = received(ep)
    [b] = received(other)
    assert (a.id, a.qd[0].qname, a.an[0].rdata) == (0x2222, b"a.example.", "192.0.2.1")
    assert (b.id, b.qd[0].qname, b.an[0].rdata) == (0x2222, b"b.example.", "192.0.2.2")


def test_ipv6_query_is_answered_from_the_ipv6_gateway() -> None:
    link, _ = setup()
    ep6 = UDPEndpoint(link.guest, 16)
    ep6.bind(bytes(16), 5355)
    ep6.sendto(query(7, qtype="AAAA"), (GW6, 53))
    link.run(0.1)
    [(sent, _)] = link.upstream.sent
    link.upstream.reply(answer_to(sent), UPSTREAM)
    link.run(0.1)
    data, source = ep6.recvfrom()
    assert source == (GW6, 53)
    assert DNS(data).id == 7


def test_guest_retransmission_reuses_the_pending_query() -> None:
    link, ep = setup()
    ep.sendto(query(0x3333), (GW4, 53))
    link.run(1.0)
    ep.sendto(query(0x3333), (GW4, 53))
    link.run(0.1)
    (first, _), (again, _) = link.upstream.sent
    assert first == again
    assert len(link.dns.pending) == 1
    assert link.gateway.stats["dns.retransmit"] == 1


def test_timeout_moves_to_the_next_server_then_servfail() -> None:
    link, ep = setup([UPSTREAM, SECOND])
    ep.sendto(query(0x4444), (GW4, 53))
    link.run(1.9)
    assert [s for _, s in link.upstream.sent] == [UPSTREAM]
    link.run(0.2)  # 2 s: the first server had its chance
    assert [s for _, s in link.upstream.sent] == [UPSTREAM, SECOND]
    assert link.upstream.sent[0][0] == link.upstream.sent[1][0]
    assert received(ep) == []
    link.run(2.0)  # and the second too
    [reply] = received(ep)
    assert (reply.id, reply.qr, reply.rcode, reply.rd, reply.ra) == (0x4444, 1, 2, 1, 1)
    assert reply.qd[0].qname == b"example.org." and reply.ancount == 0
    assert link.dns.pending == {}
    assert link.gateway.stats["dns.upstream_timeout"] == 2
    assert link.gateway.stats["dns.servfail_timeout"] == 1
    # an answer that comes too late is dropped
    link.upstream.reply(answer_to(link.upstream.sent[0][0]), UPSTREAM)
    link.run(0.1)
    assert received(ep) == []
    assert link.gateway.stats["dns_upstream.drop.not_for_us"] == 1


def test_answer_from_the_second_server_after_failover_is_taken() -> None:
    link, ep = setup([UPSTREAM, SECOND])
    ep.sendto(query(0x5555), (GW4, 53))
    link.run(2.5)
    link.upstream.reply(answer_to(link.upstream.sent[0][0]), SECOND)
    link.run(0.1)
    assert [r.id for r in received(ep)] == [0x5555]


@pytest.mark.parametrize("forge", ["server", "question", "id", "not-a-response"])
def test_stray_or_spoofed_answers_are_dropped(forge: str) -> None:
    link, ep = setup()
    ep.sendto(query(0x6666), (GW4, 53))
    link.run(0.1)
    [(sent, _)] = link.upstream.sent
    data, server = answer_to(sent), UPSTREAM
    if forge == "server":
        server = ("198.51.100.9", 53)
    elif forge == "question":
        data = answer_to(wire.with_id(query(0, "evil.example"), int.from_bytes(sent[:2], "big")))
    elif forge == "id":
        data = wire.with_id(data, (int.from_bytes(sent[:2], "big") + 1) & 0xFFFF)
    else:
        data = sent
    link.upstream.reply(data, server)
    link.run(0.1)
    assert received(ep) == []
    assert len(link.dns.pending) == 1  # the real answer may still come
    assert link.gateway.stats["dns_upstream.drop.not_for_us"] == 1


def test_servfail_at_once_without_upstream() -> None:
    link, ep = setup(servers=[])
    ep.sendto(query(0x7777), (GW4, 53))
    link.run(0.1)
    [reply] = received(ep)
    assert (reply.id, reply.qr, reply.rcode) == (0x7777, 1, wire.RCODE_SERVFAIL)
    assert reply.qd[0].qname == b"example.org."
    assert link.upstream.sent == []
    assert link.gateway.stats["dns.servfail_no_upstream"] == 1


def test_other_opcodes_get_notimp() -> None:
    link, ep = setup()
    ep.sendto(bytes(DNS(id=9, opcode=4, qd=DNSQR(qname="example.org"))), (GW4, 53))  # NOTIFY
    link.run(0.1)
    [reply] = received(ep)
    assert (reply.id, reply.opcode, reply.rcode) == (9, 4, wire.RCODE_NOTIMP)
    assert link.upstream.sent == []


def test_pending_queries_are_bounded() -> None:
    link, ep = setup()
    link.dns.max_pending = 3
    for ident in range(5):
        ep.sendto(query(ident), (GW4, 53))
    link.run(0.1)
    assert len(link.upstream.sent) == 3
    assert link.gateway.stats["dns.drop.queue_full"] == 2


@pytest.mark.parametrize("data,counter", [
    (b"\x12\x34\x01", "dns.drop.truncated"),
    (bytes(DNS(id=1, qr=1, qd=DNSQR(qname="example.org"))), "dns.drop.bad_message"),
    (bytes(DNS(id=1, qd=None)), "dns.drop.bad_message"),  # no question
    (bytes(DNS(id=1, qd=[DNSQR(qname="a.example"), DNSQR(qname="b.example")])),
     "dns.drop.bad_message"),
    (b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
     "dns.drop.bad_message"),  # the name points at itself
], ids=["truncated", "response", "no-question", "two-questions", "pointer-loop"])
def test_malformed_queries_are_dropped_and_counted(data: bytes, counter: str) -> None:
    link, ep = setup()
    ep.sendto(data, (GW4, 53))
    link.run(0.1)
    assert received(ep) == []
    assert link.upstream.sent == []
    assert link.gateway.stats[counter] == 1


def test_close_stops_the_upstream_and_forgets_pending_queries() -> None:
    link, ep = setup()
    ep.sendto(query(1), (GW4, 53))
    link.run(0.1)
    link.services.close()
    assert link.upstream.closed
    assert link.dns.pending == {}
    link.run(10.0)  # no timer is left behind
    assert received(ep) == []
