# SPDX-License-Identifier: MIT
"""A seeded fuzz of hostile segments injected into live connections while data flows
both ways: corrupted copies of real frames (bad checksums), truncated and re-checksummed
ones (bad offsets, overrunning options), and forged ones with valid checksums (random
flags, sequence and acknowledgment numbers, windows, options, data offsets). Nothing may
raise, and the application streams must arrive intact.

The forgeries stay within what TCP can be expected to withstand: a segment with a valid
checksum, an in-window sequence number and an acceptable ACK is indistinguishable from
the peer's own, so forged data always carries the stream's true bytes for its position,
no forged data lies beyond what the peer has sent, no forged segment carries a FIN or an
exact-sequence RST, no forged ACK acknowledges data in flight, and no forged timestamp is
newer than the peer's clock."""

from __future__ import annotations

import hashlib
import ipaddress
import random
import struct

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    ADDRS,
    AF4,
    AF6,
    PSH,
    RST,
    SYN,
    Conn,
    Impairment,
    build_segment,
    connect,
    impaired_pair,
    pattern,
    pump,
)
from ustack.link.channel import ChannelEndpoint
from ustack.testing.pair import StackPair
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.wire import checksum
from ustack.wire import ethernet as eth
from ustack.wire import tcp as wire
from ustack.wire.proto import EtherType, IPProto

MASK = 0xFFFFFFFF
URG, ECE, CWR = 0x20, 0x40, 0x80


class Fuzzer:
    def __init__(self, p: StackPair, c: Conn, family: int, streams: dict[str, bytes],
                 seed: int, count: int) -> None:
        self.p = p
        self.c = c
        self.rng = random.Random(seed)
        self.left = count
        self.streams = streams  # what each side *receives*: "a", "b"
        self.addrs = {k: ipaddress.ip_address(v).packed
                      for k, v in zip("ab", ADDRS[family], strict=True)}
        self.kinds: dict[str, int] = {}
        p.link_a.written, p.link_b.written = [], []

    # the target side: its link, endpoint, and the peer whose frames it normally hears
    def _side(self, target: str) -> tuple[ChannelEndpoint, ChannelEndpoint, TCPEndpoint]:
        if target == "a":
            return self.p.link_a, self.p.link_b, self.c.cep
        return self.p.link_b, self.p.link_a, self.c.sep

    def tick(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        target = self.rng.choice("ab")
        kind = self.rng.choice(["corrupt", "truncate", "forge", "forge", "offset"])
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        link, other, ep = self._side(target)
        frame = getattr(self, kind)(target, other, ep)
        if frame is not None:
            link.inject(frame)
        for lk in (self.p.link_a, self.p.link_b):  # keep only recent frames
            if lk.written is not None and len(lk.written) > 64:
                del lk.written[:-32]
        self.p.clock.call_later(self.rng.choice([0.0, 0.0001, 0.0003, 0.001]), self.tick)

    # --- frames --------------------------------------------------------------------------

    def _real_tcp_frame(self, other: ChannelEndpoint) -> bytes | None:
        frames = [f for f in other.written or [] if self._tcp_offset(f) is not None]
        return self.rng.choice(frames) if frames else None

    @staticmethod
    def _tcp_offset(frame: bytes) -> int | None:
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == EtherType.IPV4 and frame[14 + 9] == IPProto.TCP:
            return 14 + (frame[14] & 0xF) * 4
        if ethertype == EtherType.IPV6 and frame[14 + 6] == IPProto.TCP:
            return 14 + 40
        return None

    def _frame(self, target: str, l4: bytes) -> bytes:
        src, dst = self.addrs["b" if target == "a" else "a"], self.addrs[target]
        link, other, _ep = self._side(target)
        if len(src) == 4:
            from ustack.wire import ipv4

            ip = ipv4.build(total_length=20 + len(l4), protocol=IPProto.TCP, src=src, dst=dst)
            return eth.build(link.link_address, other.link_address, EtherType.IPV4) + ip + l4
        from ustack.wire import ipv6

        ip = ipv6.build(payload_length=len(l4), next_header=IPProto.TCP, src=src, dst=dst)
        return eth.build(link.link_address, other.link_address, EtherType.IPV6) + ip + l4

    def corrupt(self, target: str, other: ChannelEndpoint, ep: TCPEndpoint) -> bytes | None:
        """A real frame with some TCP bytes changed and the checksum left wrong."""
        frame = self._real_tcp_frame(other)
        if frame is None:
            return None
        off = self._tcp_offset(frame)
        assert off is not None
        data = bytearray(frame)
        for _ in range(self.rng.randint(1, 4)):
            i = self.rng.randrange(off, len(data))
            data[i] ^= self.rng.randint(1, 255)
        src, dst = self._addresses(data)
        seg = bytes(data[off:])
        if checksum.verify(seg, checksum.pseudo_header_sum(src, dst, IPProto.TCP, len(seg))):
            return None  # the changes cancelled out in the sum: that is just another segment
        return bytes(data)

    @staticmethod
    def _addresses(frame: bytes | bytearray) -> tuple[bytes, bytes]:
        if struct.unpack_from("!H", frame, 12)[0] == EtherType.IPV4:
            return bytes(frame[26:30]), bytes(frame[30:34])
        return bytes(frame[22:38]), bytes(frame[38:54])

    def truncate(self, target: str, other: ChannelEndpoint, ep: TCPEndpoint) -> bytes | None:
        """A real segment cut inside its header or options, re-checksummed."""
        frame = self._real_tcp_frame(other)
        if frame is None:
            return None
        off = self._tcp_offset(frame)
        assert off is not None
        seg = bytearray(frame[off:])
        hlen = (seg[12] >> 4) * 4
        cut = self.rng.randint(0, max(hlen - 1, 0))
        seg = seg[:cut]
        if len(seg) >= 18:
            src, dst = self._addresses(frame)
            seg = bytearray(_fix_checksum(bytes(seg), src, dst))
        return self._frame(target, bytes(seg))

    def _stream_bytes(self, target: str, ep: TCPEndpoint, seq: int, n: int) -> bytes:
        """The true stream bytes at unwrapped ``seq``, and only bytes the real peer has
        already sent: data from the future would be acknowledged beyond the peer's SND.NXT,
        which no TCP can recover from (the peer discards such ACKs)."""
        stream = self.streams[target]
        peer = self.c.sep if target == "a" else self.c.cep
        n = min(n, peer.sender.snd_max - seq)
        start = seq - (ep.receiver.irs + 1)
        if start < 0 or start >= len(stream) or n <= 0:
            return b""
        return stream[start:start + n]

    def _forged(self, target: str, ep: TCPEndpoint, data_offset: int | None = None,
                ) -> bytes:
        rng = self.rng
        r, s = ep.receiver, ep.sender
        nxt = r.rcv_nxt
        seq = rng.choice([nxt, nxt + rng.randint(1, 3000), nxt - rng.randint(1, 3000),
                          nxt + rng.randint(0, 1 << 20), rng.getrandbits(32) + (nxt & ~MASK)])
        peer = self.c.sep if target == "a" else self.c.cep
        if peer.sender.snd_max < seq <= r.acceptable_end() + (1 << 20):
            # a sequence number from the future would be taken (it may be in the window)
            # and then outrank every real segment for the window (SND.WL1): not the peer's
            seq = peer.sender.snd_max - rng.randint(0, 3000)
        flags = 0
        for bit, p in ((ACK, 0.85), (PSH, 0.3), (URG, 0.1), (ECE, 0.1), (CWR, 0.1),
                       (SYN, 0.08), (RST, 0.08)):
            if rng.random() < p:
                flags |= bit
        if flags & RST and (seq & MASK) == (nxt & MASK):
            flags &= ~RST  # an exact RST is a legitimate reset
        ack = rng.choice([s.snd_una, s.snd_una - rng.randint(1, 70000),
                          s.snd_max + rng.randint(1, 70000), rng.getrandbits(32)])
        if s.snd_una < ack <= s.snd_max or \
                (s.snd_una & MASK) < (ack & MASK) <= (s.snd_max & MASK):
            ack = s.snd_una  # never acknowledge data in flight
        options = self._options(ep)
        n = rng.choice([0, 0, 1, 100, 1000, 1448])
        payload = self._stream_bytes(target, ep, seq, n) if not flags & SYN else \
            self._stream_bytes(target, ep, seq + 1, n)
        peer_port, local_port = ep.remote_port, ep.local_port
        src, dst = self.addrs["b" if target == "a" else "a"], self.addrs[target]
        window = rng.choice([0, 1, 1000, 65535, rng.getrandbits(16)])
        return build_segment(src, dst, peer_port, local_port, seq, ack, flags, window, options,
                             payload, data_offset=data_offset)

    def _options(self, ep: TCPEndpoint) -> bytes:
        rng = self.rng
        choice = rng.random()
        if choice < 0.3:
            return b""
        if choice < 0.5:  # random SACK blocks, near and far
            base = ep.sender.snd_una
            blocks = []
            for _ in range(rng.randint(1, 3)):
                left = base + rng.randint(-70000, 200000)
                blocks.append((left & MASK, (left + rng.randint(-100, 5000)) & MASK))
            ts = None
            if ep.ts_enabled:
                ts = ((ep.ts_recent - rng.randint(0, 1000)) & MASK, rng.getrandbits(32))
            return wire.build_options(wire.TCPOptions(sack_blocks=tuple(blocks), timestamp=ts))
        if choice < 0.6 and ep.ts_enabled:  # an old timestamp: PAWS
            return wire.build_options(wire.TCPOptions(
                timestamp=((ep.ts_recent - rng.randint(1, 1 << 30)) & MASK, 0)))
        # garbage: random bytes in whole words; never a timestamp newer than the peer's
        raw = rng.randbytes(4 * rng.randint(1, 10))
        try:
            parsed = wire.parse_options(raw, 0, len(raw))
        except Exception:
            return raw
        if parsed.timestamp is not None:
            return b""
        return raw

    def forge(self, target: str, other: ChannelEndpoint, ep: TCPEndpoint) -> bytes:
        return self._frame(target, self._forged(target, ep))

    def offset(self, target: str, other: ChannelEndpoint, ep: TCPEndpoint) -> bytes:
        """A forged segment whose data offset is impossible (below five words, or past the
        segment's end), with a valid checksum. (A possible but wrong offset just shifts
        bytes between options and data: a different segment, forged by ``forge``.)"""
        seg = bytearray(self._forged(target, ep))
        impossible = [*range(5), *range(len(seg) // 4 + 1, 16)]
        seg[12] = (self.rng.choice(impossible) << 4) | (seg[12] & 0xF)
        src, dst = self.addrs["b" if target == "a" else "a"], self.addrs[target]
        return self._frame(target, _fix_checksum(bytes(seg), src, dst))


def _fix_checksum(seg: bytes, src: bytes, dst: bytes) -> bytes:
    out = bytearray(seg)
    out[16:18] = b"\0\0"
    value = checksum.checksum(out, checksum.pseudo_header_sum(src, dst, IPProto.TCP, len(out)))
    out[16:18] = value.to_bytes(2, "big")
    return bytes(out)


@pytest.mark.parametrize("family", [AF4, AF6], ids=["ipv4", "ipv6"])
def test_fuzzed_segments_raise_nothing_and_lose_no_byte(family: int) -> None:
    link = Impairment(rate=20e6, delay=0.002)  # 20 Mbit/s: the fuzz meets a busy connection
    p, _a, _b = impaired_pair(tx_a=link, tx_b=link)
    c = connect(p, family)
    up = pattern(1_500_000, seed=71)
    down = pattern(700_000, seed=72)
    fuzz = Fuzzer(p, c, family, {"b": up, "a": down}, seed=1234 + family, count=3000)
    fuzz.tick()
    got = pump(p, [(c.client, c.server, up), (c.server, c.client, down)], timeout=3600)
    assert fuzz.left < 1500  # most of it landed while data was flowing
    assert hashlib.sha256(got[0]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got[1]).digest() == hashlib.sha256(down).digest()
    p.run(1.0)
    while fuzz.left > 0:  # the rest of the fuzz on the now idle connection
        p.run(1.0)
    assert c.cep.state.name == "ESTABLISHED" and c.sep.state.name == "ESTABLISHED"
    c.client.sendall(b"still alive")
    assert c.server.recv(100) == b"still alive"
    drops = p.a.stats.drops_by_reason() | p.b.stats.drops_by_reason()
    assert drops.get("bad_checksum", 0) > 50
    assert set(fuzz.kinds) == {"corrupt", "truncate", "forge", "offset"}
