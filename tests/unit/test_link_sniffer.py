# SPDX-License-Identifier: MIT
"""The pcap sniffer link: what it records, byte for byte, read back by independent decoders."""

from __future__ import annotations

import io
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from ustack.buffer import PacketBuffer
from ustack.clock import VirtualClock
from ustack.contracts import LinkCapabilities, LinkEndpoint
from ustack.link.channel import ChannelEndpoint
from ustack.link.loopback import LoopbackEndpoint
from ustack.link.sniffer import SnifferEndpoint, finished_frame
from ustack.testing.pair import StackPair, make_pair
from ustack.wire import checksum
from ustack.wire import ipv4 as ipv4_wire
from ustack.wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, MAGIC_NANOSECONDS
from ustack.wire.proto import EtherType, IPProto

_RECORD = struct.Struct("<IIII")


def read_records(data: bytes) -> tuple[int, list[tuple[float, int, bytes]]]:
    """Our own reading of a classic pcap: (linktype, [(time, original length, bytes)])."""
    magic, major, minor, _, _, _snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor) == (MAGIC_NANOSECONDS, 2, 4)
    records = []
    offset = 24
    while offset < len(data):
        sec, nsec, incl, orig = _RECORD.unpack_from(data, offset)
        offset += _RECORD.size
        records.append((sec + nsec / 1e9, orig, data[offset:offset + incl]))
        offset += incl
    assert offset == len(data)
    return linktype, records


class Sniffed:
    """make_pair's wrap hook: a sniffer on side a, recording into memory."""

    def __init__(self) -> None:
        self.stream = io.BytesIO()
        self.sniffer: SnifferEndpoint | None = None
        self.skip = 0  # records made before the test started looking

    def __call__(self, link: LinkEndpoint) -> LinkEndpoint:
        assert isinstance(link, ChannelEndpoint)
        self.sniffer = SnifferEndpoint(link, link._clock, self.stream, close_stream=False)
        return self.sniffer

    def all_records(self) -> list[tuple[float, int, bytes]]:
        linktype, records = read_records(self.stream.getvalue())
        assert linktype == LINKTYPE_ETHERNET
        return records

    def records(self) -> list[tuple[float, int, bytes]]:
        return self.all_records()[self.skip:]


def recording_pair(**kwargs: Any) -> tuple[StackPair, Sniffed]:
    sniffed = Sniffed()
    pair = make_pair(wrap_a=sniffed, **kwargs)
    pair.link_a.written = []
    pair.link_b.written = []
    sniffed.skip = len(sniffed.all_records())  # start-up chatter is not what we look at
    return pair, sniffed


def udp_exchange(pair: StackPair, payload: bytes = b"hello sniffer") -> None:
    sa = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sb = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sb.bind(("10.0.0.2", 5000))
    sa.bind(("10.0.0.1", 4000))
    sb.settimeout(1.0)
    sa.settimeout(1.0)
    sa.sendto(payload, ("10.0.0.2", 5000))
    data, addr = sb.recvfrom(2000)
    assert data == payload
    sb.sendto(payload[::-1], addr)
    assert sa.recvfrom(2000)[0] == payload[::-1]


def ping(pair: StackPair, size: int = 32) -> bytes:
    s = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(1.0)
    s.sendto(bytes([8, 0, 0, 0, 0, 0, 0, 1]) + bytes(range(size)), ("10.0.0.2", 0))
    reply: bytes = s.recvfrom(2000)[0]
    return reply


def test_records_both_directions_byte_for_byte() -> None:
    pair, sniffed = recording_pair()
    udp_exchange(pair)
    ping(pair)
    records = sniffed.records()
    mac_a = pair.link_a.link_address
    outbound = [r[2] for r in records if r[2][6:12] == mac_a]
    inbound = [r[2] for r in records if r[2][6:12] != mac_a]
    # what a sent is what went on the wire; what a received is what b put on it
    assert outbound == pair.link_a.written
    assert inbound == pair.link_b.written
    assert all(orig == len(data) for _, orig, data in records)
    assert len(outbound) == 3 and len(inbound) == 3  # ARP, UDP, echo each way
    everything = sniffed.all_records()
    assert sniffed.sniffer is not None
    assert sniffed.sniffer.stats["sniffer.tx_frames"] == sum(
        r[2][6:12] == mac_a for r in everything)
    assert sniffed.sniffer.stats["sniffer.rx_frames"] == sum(
        r[2][6:12] != mac_a for r in everything)


def test_scapy_decodes_the_traffic(tmp_path: Path) -> None:
    pair, sniffed = recording_pair()
    udp_exchange(pair, b"scapy reads this")
    ping(pair, 48)
    path = tmp_path / "a.pcap"
    path.write_bytes(sniffed.stream.getvalue())
    frames = rdpcap(str(path))
    udp = [f for f in frames if UDP in f]
    assert [(f[IP].src, f[IP].dst, f[UDP].sport, f[UDP].dport, bytes(f[UDP].payload))
            for f in udp] == [("10.0.0.1", "10.0.0.2", 4000, 5000, b"scapy reads this"),
                              ("10.0.0.2", "10.0.0.1", 5000, 4000, b"siht sdaer ypacs")]
    icmp = [f for f in frames if ICMP in f]
    assert [(f[ICMP].type, f[IP].src) for f in icmp] == [(8, "10.0.0.1"), (0, "10.0.0.2")]
    assert bytes(icmp[0][ICMP].payload) == bytes(range(48))
    assert all(f[Ether].type in (EtherType.IPV4, EtherType.ARP, EtherType.IPV6) for f in frames)
    # scapy recomputes checksums when asked to rebuild: they must match what was recorded
    for f in udp + icmp:
        rebuilt = Ether(bytes(f))
        del rebuilt[IP].chksum
        layer = UDP if UDP in f else ICMP
        del rebuilt[layer].chksum
        rebuilt = Ether(bytes(rebuilt))
        assert rebuilt[IP].chksum == f[IP].chksum
        assert rebuilt[layer].chksum == f[layer].chksum


def test_timestamps_come_from_the_clock() -> None:
    pair, sniffed = recording_pair(latency=0.005)
    start = pair.clock.now()
    ping(pair)
    records = sniffed.records()
    request = next(r for r in records if r[2][12:14] == b"\x08\x00" and r[2][34] == 8)
    reply = next(r for r in records if r[2][12:14] == b"\x08\x00" and r[2][34] == 0)
    # ARP first (one round trip), then the echo's round trip, each leg 5 ms of latency
    assert request[0] == pytest.approx(start + 0.010, abs=1e-6)
    assert reply[0] == pytest.approx(start + 0.020, abs=1e-6)
    times = [r[0] for r in records]
    assert times == sorted(times)


def test_partial_checksum_recorded_finished_packet_left_partial() -> None:
    caps = (LinkCapabilities.RESOLUTION_REQUIRED | LinkCapabilities.TX_CHECKSUM_OFFLOAD
            | LinkCapabilities.RX_CHECKSUM_OFFLOAD)
    pair, sniffed = recording_pair(capabilities=caps)
    udp_exchange(pair, b"offloaded checksum")
    recorded = next(r[2] for r in sniffed.records()
                    if r[2][12:14] == b"\x08\x00" and r[2][23] == IPProto.UDP
                    and r[2][6:12] == pair.link_a.link_address)
    assert pair.link_a.written is not None
    on_wire = next(f for f in pair.link_a.written
                   if f[12:14] == b"\x08\x00" and f[23] == IPProto.UDP)
    hdr = ipv4_wire.parse(recorded[14:])
    segment = recorded[14 + hdr.header_length:]
    pseudo = checksum.pseudo_header_sum(hdr.src, hdr.dst, IPProto.UDP, len(segment))
    # the recording carries a complete checksum ...
    assert checksum.verify(segment, pseudo)
    # ... while the frame that went on still holds the pseudo-header sum (virtio NEEDS_CSUM)
    assert on_wire[:40] == recorded[:40]
    assert on_wire[42:] == recorded[42:]
    assert int.from_bytes(on_wire[40:42], "big") == pseudo


def test_finished_frame_does_not_mutate_and_maps_zero_to_ffff() -> None:
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    # find a payload whose UDP checksum comes out as 0: it must be sent as 0xFFFF
    for n in range(70000):
        payload = n.to_bytes(4, "big")
        pseudo = checksum.pseudo_header_sum(src, dst, IPProto.UDP, 12)
        header = struct.pack("!HHHH", 1, 2, 12, pseudo)
        if checksum.checksum(header + payload) == 0:
            break
    else:
        pytest.fail("no zero-checksum payload found")
    pkt = PacketBuffer(8, payload)
    pkt.prepend(8)[:] = header
    pkt.csum_partial = (12, 6)
    out = finished_frame(pkt, b"L" * 14)
    assert out[:14] == b"L" * 14
    assert out[14 + 6:14 + 8] == b"\xff\xff"
    assert pkt.csum_partial == (12, 6)
    assert bytes(pkt.headers()) == header


def test_loopback_link_records_raw_ip() -> None:
    clock = VirtualClock()
    stream = io.BytesIO()
    sniffer = SnifferEndpoint(LoopbackEndpoint(clock), clock, stream, close_stream=False)
    received: list[tuple[int, bytes]] = []

    class Dispatcher:
        def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None:
            received.append((ethertype, bytes(pkt.body())))

    sniffer.attach(Dispatcher())
    packet = bytearray(28)
    ipv4_wire.build_into(packet, 0, total_length=28, protocol=IPProto.UDP,
                         src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 2]), ttl=64)
    pkt = PacketBuffer(0, bytes(packet))
    pkt.network_protocol = EtherType.IPV4
    assert sniffer.write_packets([pkt]) == 1
    clock.run_ready()
    assert received == [(EtherType.IPV4, bytes(packet))]
    linktype, records = read_records(stream.getvalue())
    assert linktype == LINKTYPE_RAW
    assert [r[2] for r in records] == [bytes(packet), bytes(packet)]
    assert sniffer.stats["sniffer.tx_frames"] == 1
    assert sniffer.stats["sniffer.rx_frames"] == 1


def test_snaplen_truncates_but_keeps_original_length() -> None:
    clock = VirtualClock()
    a, b = ChannelEndpoint.pair(clock)
    stream = io.BytesIO()
    sniffer = SnifferEndpoint(a, clock, stream, snaplen=40, close_stream=False)
    pkt = PacketBuffer(14, bytes(100))
    pkt.dst_link = b.link_address
    pkt.network_protocol = EtherType.IPV4
    sniffer.write_packets([pkt])
    _, records = read_records(stream.getvalue())
    assert [(orig, len(data)) for _, orig, data in records] == [(114, 40)]


def test_close_closes_the_file(tmp_path: Path) -> None:
    clock = VirtualClock()
    a, _ = ChannelEndpoint.pair(clock)
    path = tmp_path / "x.pcap"
    sniffer = SnifferEndpoint.to_file(a, clock, str(path))
    sniffer.close()
    assert path.read_bytes()[:4] == struct.pack("<I", MAGIC_NANOSECONDS)
    assert not a.up


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_file(tmp_path: Path) -> None:
    caps = (LinkCapabilities.RESOLUTION_REQUIRED | LinkCapabilities.TX_CHECKSUM_OFFLOAD
            | LinkCapabilities.RX_CHECKSUM_OFFLOAD)
    pair, sniffed = recording_pair(capabilities=caps)
    udp_exchange(pair, b"tshark")
    ping(pair)
    path = tmp_path / "a.pcap"
    path.write_bytes(sniffed.stream.getvalue())
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "udp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=,",
         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport",
         "-e", "udp.checksum.status", "-e", "icmp.type", "-e", "ip.checksum.status",
         "-Y", "ip"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.split(",") for line in out.splitlines()]
    start = sniffed.records()[0][0]
    assert all(float(row[0]) >= start - 1e-6 for row in rows)
    summary = [row[1:] for row in rows]
    assert summary == [
        ["10.0.0.1", "10.0.0.2", "5000", "1", "", "1"],  # 1: checksum good (finished)
        # inbound frames are recorded as received: b left its checksum partial (0: bad)
        ["10.0.0.2", "10.0.0.1", "4000", "0", "", "1"],
        ["10.0.0.1", "10.0.0.2", "", "", "8", "1"],
        ["10.0.0.2", "10.0.0.1", "", "", "0", "1"],
    ]
