# SPDX-License-Identifier: MIT
"""Helpers for the TCP tests: two stacks with tuned TCP settings, connected socket pairs,
a pump that moves a byte stream across on the virtual clock, and a scripted raw peer
that builds segments byte by byte and decodes what the stack sends."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ustack.clock import VirtualClock
from ustack.contracts import LinkEndpoint
from ustack.link.impairment import Impairment, ImpairmentEndpoint
from ustack.stack import Stack
from ustack.testing.pair import A4, A6, B4, B6, StackPair, make_pair
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.endpoint import TCPEndpoint
from ustack.transport.tcp.listener import Listener
from ustack.transport.tcp.protocol import TCPProtocol
from ustack.transport.tcp.segment import ACK, FIN, PSH, RST, SYN, flag_string
from ustack.transport.tcp.state import State
from ustack.waiter import READABLE, WRITABLE
from ustack.wire import checksum, ipv4, ipv6
from ustack.wire import ethernet as eth
from ustack.wire import tcp as wire
from ustack.wire.proto import EtherType, IPProto

__all__ = ["A4", "A6", "ACK", "B4", "B6", "FIN", "PSH", "RST", "SYN", "Impairment"]

AF4, AF6 = socket.AF_INET, socket.AF_INET6
ADDRS: dict[int, tuple[str, str]] = {AF4: (A4, B4), AF6: (A6, B6)}
DONTWAIT = socket.MSG_DONTWAIT


def tcp(stack: Stack) -> TCPProtocol:
    proto = stack.transport_protocols[IPProto.TCP]
    assert isinstance(proto, TCPProtocol)
    return proto


def configure(stack: Stack, **settings: Any) -> TCPConfig:
    """Give ``stack`` a TCP with these settings (before any TCP socket exists)."""
    config = TCPConfig(**settings)
    stack.register_transport_protocol(TCPProtocol(stack, config))
    return config


def pair(tcp_a: dict[str, Any] | None = None, tcp_b: dict[str, Any] | None = None,
         **kwargs: Any) -> StackPair:
    """make_pair() with per-side TCP settings."""
    p = make_pair(**kwargs)
    if tcp_a:
        configure(p.a, **tcp_a)
    if tcp_b:
        configure(p.b, **tcp_b)
    return p


def impaired_pair(tx_a: Impairment | None = None, tx_b: Impairment | None = None,
                  seed: int = 1, **kwargs: Any) -> tuple[StackPair, ImpairmentEndpoint,
                                                         ImpairmentEndpoint]:
    """A pair whose links impair what each side sends (deterministic for a seed)."""
    made: dict[str, ImpairmentEndpoint] = {}
    clock = VirtualClock()

    def wrapper(name: str, settings: Impairment | None) -> Callable[[LinkEndpoint],
                                                                       LinkEndpoint]:
        def wrap(link: LinkEndpoint) -> LinkEndpoint:
            ep = ImpairmentEndpoint(link, clock, tx=settings, seed=seed * 2 + (name == "b"))
            made[name] = ep
            return ep

        return wrap

    p = pair(wrap_a=wrapper("a", tx_a), wrap_b=wrapper("b", tx_b), clock=clock, **kwargs)
    return p, made["a"], made["b"]


def ep_of(sock: Any) -> TCPEndpoint:
    ep: TCPEndpoint = sock._ep
    return ep


def listener_of(sock: Any) -> Listener:
    """The listen queue behind a listening socket."""
    listener = ep_of(sock).listener
    assert listener is not None, "not a listening socket"
    return listener


def state_of(ep: TCPEndpoint) -> State:
    """``ep.state``, read through a call: after ``assert ep.state is State.X`` mypy keeps
    ``ep.state`` narrowed to ``X`` across the calls that change it; a call result is not."""
    return ep.state


@dataclass
class Conn:
    client: Any
    server: Any  # the accepted socket
    listener: Any

    @property
    def cep(self) -> TCPEndpoint:
        return ep_of(self.client)

    @property
    def sep(self) -> TCPEndpoint:
        return ep_of(self.server)


def listen(stack: Stack, family: int = AF4, port: int = 80, backlog: int = 128,
           setup: Callable[[Any], None] | None = None) -> Any:
    srv = stack.socket(family, socket.SOCK_STREAM)
    srv.settimeout(30)
    if setup:
        setup(srv)
    srv.bind(("::" if family == AF6 else "0.0.0.0", port))
    srv.listen(backlog)
    return srv


def connect(p: StackPair, family: int = AF4, port: int = 80,
            server_setup: Callable[[Any], None] | None = None,
            client_setup: Callable[[Any], None] | None = None,
            listener: Any = None) -> Conn:
    """a connects to b; returns the client, the accepted socket and the listener."""
    srv = listener or listen(p.b, family, port, setup=server_setup)
    cli = p.a.socket(family, socket.SOCK_STREAM)
    cli.settimeout(30)
    if client_setup:
        client_setup(cli)
    cli.connect((ADDRS[family][1], port))
    conn, _ = srv.accept()
    conn.settimeout(30)
    return Conn(cli, conn, srv)


def pattern(n: int, seed: int = 0) -> bytes:
    """n bytes that are not periodic with any small period (a shifted byte is detected)."""
    import random

    return random.Random(seed).randbytes(n)


def pump(p: StackPair, flows: Iterable[tuple[Any, Any, bytes]], timeout: float = 600.0,
         chunk: int = 1 << 16, read: bool = True) -> list[bytes]:
    """Move each (sender, receiver, data) across with non-blocking calls, advancing the
    virtual clock only when nothing can proceed. Returns what each receiver read."""
    flows = list(flows)
    offsets = [0] * len(flows)
    got = [bytearray() for _ in flows]
    deadline = p.clock.now() + timeout

    def can_progress() -> bool:
        for i, (snd, rcv, data) in enumerate(flows):
            if offsets[i] < len(data) and snd.readiness() & WRITABLE:
                return True
            if read and len(got[i]) < len(data) and rcv.readiness() & READABLE:
                return True
        return False

    while any(len(g) < len(d) for g, (_s, _r, d) in zip(got, flows, strict=True)):
        for i, (snd, rcv, data) in enumerate(flows):
            while offsets[i] < len(data):
                try:
                    offsets[i] += snd.send(data[offsets[i]:offsets[i] + chunk], DONTWAIT)
                except BlockingIOError:
                    break
            while read and len(got[i]) < len(data):
                try:
                    piece = rcv.recv(chunk, DONTWAIT)
                except BlockingIOError:
                    break
                if not piece:
                    raise AssertionError(f"flow {i}: end of stream after {len(got[i])} bytes")
                got[i] += piece
        if not any(len(g) < len(d) for g, (_s, _r, d) in zip(got, flows, strict=True)):
            break
        if not read and all(o == len(d) for o, (_s, _r, d) in zip(offsets, flows, strict=True)):
            break
        remaining = deadline - p.clock.now()
        if remaining <= 0 or not p.clock.run_until(can_progress, remaining):
            raise AssertionError(
                f"transfer stalled at {[len(g) for g in got]} of "
                f"{[len(d) for _s, _r, d in flows]} bytes (t={p.clock.now():.3f})")
    return [bytes(g) for g in got]


def counters(stack: Stack) -> dict[str, int]:
    return dict(stack.stats.counters)


# --- a scripted raw peer -----------------------------------------------------------------------


@dataclass
class Seg:
    """One TCP segment, as the stack sent it (decoded here, not by the stack)."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: wire.TCPOptions
    payload: bytes
    raw_options: bytes = b""
    ttl: int = 0

    @property
    def length(self) -> int:
        return len(self.payload) + bool(self.flags & SYN) + bool(self.flags & FIN)

    def has(self, flags: int) -> bool:
        return self.flags & flags == flags

    @property
    def flag_text(self) -> str:
        return flag_string(self.flags)

    @property
    def timestamp(self) -> tuple[int, int]:
        """The (TSval, TSecr) option of a segment the test expects to carry one."""
        assert self.options.timestamp is not None, f"no timestamp option: {self}"
        return self.options.timestamp

    def __repr__(self) -> str:
        return (f"<{self.flag_text} {self.sport}->{self.dport} seq={self.seq} ack={self.ack} "
                f"win={self.window} len={len(self.payload)} {self.options}>")


def decode_frame(frame: bytes) -> Seg | None:
    """A TCP segment from an Ethernet frame, its checksums checked; None for other frames."""
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    ip = frame[14:]
    if ethertype == EtherType.IPV4:
        ihl = (ip[0] & 0xF) * 4
        total, = struct.unpack_from("!H", ip, 2)
        if ip[9] != IPProto.TCP:
            return None
        assert checksum.verify(ip[:ihl]), "bad IPv4 header checksum"
        src, dst, ttl = ip[12:16], ip[16:20], ip[8]
        seg = ip[ihl:total]
    elif ethertype == EtherType.IPV6:
        plen, nh, hops = struct.unpack_from("!HBB", ip, 4)
        if nh != IPProto.TCP:
            return None
        src, dst, ttl = ip[8:24], ip[24:40], hops
        seg = ip[40:40 + plen]
    else:
        return None
    assert checksum.verify(seg, checksum.pseudo_header_sum(src, dst, IPProto.TCP, len(seg))), \
        "bad TCP checksum"
    sport, dport, seq, ack, off, flags, window, _csum, _urg = wire.HEADER.unpack_from(seg)
    hlen = (off >> 4) * 4
    raw = bytes(seg[20:hlen])
    opts = wire.parse_options(seg, 20, hlen) if raw else wire.NO_OPTIONS
    return Seg(str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), sport, dport,
               seq, ack, flags, window, opts, bytes(seg[hlen:]), raw, ttl)


def segments(frames: list[bytes] | None) -> list[Seg]:
    return [s for s in (decode_frame(f) for f in frames or []) if s is not None]


def build_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
                  flags: int, window: int = 65535, options: bytes | wire.TCPOptions = b"",
                  payload: bytes = b"", data_offset: int | None = None,
                  bad_checksum: bool = False) -> bytes:
    """A TCP segment (header, options, payload) with a correct checksum unless asked."""
    opts = wire.build_options(options) if isinstance(options, wire.TCPOptions) else options
    hlen = 20 + len(opts)
    buf = bytearray(hlen)
    wire.build_header_into(buf, 0, src_port=sport, dst_port=dport, seq=seq & 0xFFFFFFFF,
                           ack=ack & 0xFFFFFFFF, flags=flags, window=window, options=opts)
    if data_offset is not None:
        buf[12] = (data_offset << 4) | (buf[12] & 0xF)
    wire.fill_checksum(buf, src, dst, payload)
    if bad_checksum:
        buf[16] ^= 0x5A
    return bytes(buf) + payload


def ip_frame(src: bytes, dst: bytes, src_mac: bytes, dst_mac: bytes, l4: bytes,
             proto: int = IPProto.TCP) -> bytes:
    if len(src) == 4:
        header = ipv4.build(total_length=20 + len(l4), protocol=proto, src=src, dst=dst)
        return eth.build(dst_mac, src_mac, EtherType.IPV4) + header + l4
    header = ipv6.build(payload_length=len(l4), next_header=proto, src=src, dst=dst)
    return eth.build(dst_mac, src_mac, EtherType.IPV6) + header + l4


@dataclass
class RawPeer:
    """Stack a talks to a scripted peer at b's addresses: what a sends is recorded (and
    goes nowhere), what the test builds is injected into a."""

    p: StackPair
    family: int = AF4
    port: int = 5000  # the peer's port
    local_port: int = 80  # the stack's port
    seen: list[Seg] = field(default_factory=list)

    @classmethod
    def create(cls, family: int = AF4, tcp_a: dict[str, Any] | None = None,
               **kwargs: Any) -> RawPeer:
        p = pair(tcp_a=tcp_a, **kwargs)
        p.link_a.peer = None
        p.link_b.peer = None
        p.link_a.written = []
        for ethertype, addr in ((EtherType.IPV4, B4), (EtherType.IPV6, B6)):
            cache = p.nic_a.neighbor_cache(ethertype)
            assert cache is not None
            cache.add_static(ipaddress.ip_address(addr).packed, p.link_b.link_address)
        return cls(p, family)

    @property
    def stack(self) -> Stack:
        return self.p.a

    def listen(self, port: int = 80, backlog: int = 128) -> socket.socket:
        """A listening socket of the stack under test, on the wildcard address."""
        srv: socket.socket = self.stack.socket(self.family, socket.SOCK_STREAM)
        srv.bind(("0.0.0.0" if self.family == AF4 else "::", port))
        srv.listen(backlog)
        return srv

    @property
    def addr(self) -> bytes:
        return ipaddress.ip_address(ADDRS[self.family][1]).packed

    @property
    def stack_addr(self) -> bytes:
        return ipaddress.ip_address(ADDRS[self.family][0]).packed

    def run(self, seconds: float = 0.0) -> None:
        self.p.clock.run_ready()
        if seconds:
            self.p.clock.advance(seconds)

    def take(self, seconds: float = 0.0) -> list[Seg]:
        """Run the clock, then the TCP segments the stack sent since the last call."""
        self.run(seconds)
        out = segments(self.p.link_a.written)
        self.p.link_a.written = []
        self.seen += out
        return out

    def wait(self, timeout: float) -> bool:
        """Run the clock until the stack has sent a TCP segment (or ``timeout`` passes)."""
        return self.p.clock.run_until(lambda: bool(segments(self.p.link_a.written)), timeout)

    def expect(self, seconds: float = 0.0) -> Seg:
        """Exactly one segment."""
        segs = self.take(seconds)
        assert len(segs) == 1, f"expected one segment, got {segs}"
        return segs[0]

    def nothing(self, seconds: float = 0.0) -> None:
        segs = self.take(seconds)
        assert segs == [], f"expected silence, got {segs}"

    def segment(self, seq: int, ack: int, flags: int, window: int = 65535,
                options: bytes | wire.TCPOptions = b"", payload: bytes = b"",
                sport: int | None = None, dport: int | None = None, **kw: Any) -> bytes:
        return build_segment(self.addr, self.stack_addr, self.port if sport is None else sport,
                             self.local_port if dport is None else dport, seq, ack, flags,
                             window, options, payload, **kw)

    def inject_l4(self, l4: bytes, proto: int = IPProto.TCP) -> None:
        self.p.link_a.inject(ip_frame(self.addr, self.stack_addr, self.p.link_b.link_address,
                                      self.p.link_a.link_address, l4, proto))

    def send(self, seq: int, ack: int, flags: int, window: int = 65535,
             options: bytes | wire.TCPOptions = b"", payload: bytes = b"", **kw: Any) -> None:
        self.inject_l4(self.segment(seq, ack, flags, window, options, payload, **kw))


class PeerConn:
    """A connection between the stack (socket ``sock``) and the raw peer, tracking the
    peer's sequence numbers: ``snd_nxt`` (the peer's next seq) and ``rcv_nxt``."""

    listener: Any  # the listening socket, when peer_listen_accept() made the connection

    def __init__(self, peer: RawPeer, sock: Any, snd_nxt: int, rcv_nxt: int,
                 ts: bool = False, window: int = 65535) -> None:
        self.peer = peer
        self.sock = sock
        self.snd_nxt = snd_nxt
        self.rcv_nxt = rcv_nxt
        self.ts = ts
        self.tsval = 1000
        self.ts_recent = 0
        self.window = window

    @property
    def ep(self) -> TCPEndpoint:
        return ep_of(self.sock)

    def options(self) -> wire.TCPOptions | bytes:
        if not self.ts:
            return b""
        self.tsval += 1
        return wire.TCPOptions(timestamp=(self.tsval, self.ts_recent))

    def send(self, flags: int = ACK, payload: bytes = b"", seq: int | None = None,
             ack: int | None = None, window: int | None = None,
             options: bytes | wire.TCPOptions | None = None) -> None:
        s = self.snd_nxt if seq is None else seq
        self.peer.send(s, self.rcv_nxt if ack is None else ack, flags,
                       self.window if window is None else window,
                       self.options() if options is None else options, payload)
        if seq is None:
            self.snd_nxt += len(payload) + bool(flags & SYN) + bool(flags & FIN)

    def take(self, seconds: float = 0.0) -> list[Seg]:
        segs = self.peer.take(seconds)
        for s in segs:
            if s.options.timestamp is not None:
                self.ts_recent = s.options.timestamp[0]
        return segs

    def expect(self, seconds: float = 0.0) -> Seg:
        segs = self.take(seconds)
        assert len(segs) == 1, f"expected one segment, got {segs}"
        return segs[0]

    def ack_all(self, segs: list[Seg]) -> None:
        """Advance rcv_nxt past in-order data in ``segs`` (no ACK sent)."""
        for s in segs:
            if s.seq == self.rcv_nxt & 0xFFFFFFFF and s.length:
                self.rcv_nxt += s.length


MSS1460 = wire.TCPOptions(mss=1460)


def peer_listen_accept(peer: RawPeer, syn_options: wire.TCPOptions | bytes = MSS1460,
        iss: int = 1_000_000, window: int = 65535,
        setup: Callable[[Any], None] | None = None,
        backlog: int = 16) -> tuple[PeerConn, Seg]:
    """The raw peer opens a connection to a listener on the stack; returns the accepted
    connection and the stack's SYN-ACK."""
    fam = peer.family
    srv = peer.stack.socket(fam, socket.SOCK_STREAM)
    srv.settimeout(5)
    if setup:
        setup(srv)
    srv.bind(("::" if fam == AF6 else "0.0.0.0", peer.local_port))
    srv.listen(backlog)
    peer.send(iss, 0, SYN, window, syn_options)
    synack = peer.expect()
    assert synack.has(SYN | ACK), synack
    assert synack.ack == (iss + 1) & 0xFFFFFFFF
    ts = isinstance(syn_options, wire.TCPOptions) and syn_options.timestamp is not None \
        and synack.options.timestamp is not None
    conn = PeerConn(peer, None, iss + 1, synack.seq + 1, ts=ts, window=window)
    if synack.options.timestamp:
        conn.ts_recent = synack.options.timestamp[0]
    conn.send(ACK)
    peer.run()
    sock, _ = srv.accept()
    sock.settimeout(5)
    conn.sock = sock
    conn.listener = srv
    return conn, synack


def syn_sent(peer: RawPeer, setup: Callable[[Any], None] | None = None) -> tuple[Any, Seg]:
    """The stack's non-blocking socket connecting to the raw peer, left in SYN-SENT: its
    SYN is taken and the peer set to answer from the port it went to."""
    cli = peer.stack.socket(peer.family, socket.SOCK_STREAM)
    if setup:
        setup(cli)
    cli.setblocking(False)
    code = cli.connect_ex((ADDRS[peer.family][1], peer.port))
    assert code == errno.EINPROGRESS
    syn = peer.expect()
    assert syn.flags == SYN, syn
    peer.local_port = syn.sport
    return cli, syn


def peer_connect_from_stack(peer: RawPeer, synack_options: wire.TCPOptions | bytes = MSS1460,
        iss: int = 5_000_000, window: int = 65535,
        setup: Callable[[Any], None] | None = None) -> tuple[PeerConn, Seg]:
    """The stack connects (non-blocking) to the raw peer, which answers the SYN."""
    cli, syn = syn_sent(peer, setup)
    ts = isinstance(synack_options, wire.TCPOptions) and synack_options.timestamp is not None
    conn = PeerConn(peer, cli, iss, syn.seq + 1, ts=ts, window=window)
    if syn.options.timestamp:
        conn.ts_recent = syn.options.timestamp[0]
    opts = synack_options
    if ts and isinstance(opts, wire.TCPOptions) and opts.timestamp is not None:
        opts = opts._replace(timestamp=(opts.timestamp[0], conn.ts_recent))
    conn.send(SYN | ACK, options=opts)
    cli.settimeout(5)
    return conn, syn


def established_peer(family: int = AF4, ts: bool = False, sack: bool = False,
                     tcp_a: dict[str, Any] | None = None, mss: int = 1460,
                     wscale: int | None = None, window: int = 65535,
                     setup: Callable[[Any], None] | None = None) -> PeerConn:
    """The stack's socket connected to the raw peer, handshake complete, segments taken."""
    peer = RawPeer.create(family, tcp_a=tcp_a)
    opts = wire.TCPOptions(mss=mss, wscale=wscale, sack_permitted=sack,
                           timestamp=(1000, 0) if ts else None)
    conn, _syn = peer_connect_from_stack(peer, opts, window=window, setup=setup)
    ack = conn.expect()
    assert ack.flags == ACK
    assert conn.ep.state.name == "ESTABLISHED"
    return conn


def keepalive(idle: int = 10, intvl: int = 5, cnt: int = 3) -> Callable[[Any], None]:
    """A socket setup that turns keep-alives on (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT)."""
    def setup(s: Any) -> None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)

    return setup


Rule = Callable[[Seg | None], "str | float | None"]


class Tap:
    """Sits in for a channel end's peer: sees every frame one side sends and passes it on,
    drops it ("drop") or delays it (a float, seconds) as ``rule`` decides."""

    def __init__(self, p: StackPair, target: Any, rule: Rule) -> None:
        self.clock = p.clock
        self.target = target
        self.rule = rule
        self.dropped: list[Seg] = []
        self.passed: list[Seg] = []

    def inject(self, frame: bytes) -> None:
        seg = decode_frame(frame)
        action = self.rule(seg)
        if action == "drop":
            if seg is not None:
                self.dropped.append(seg)
            return
        if seg is not None:
            self.passed.append(seg)
        if isinstance(action, float) and action > 0:
            self.clock.call_later(action, self.target.inject, frame)
        else:
            self.target.inject(frame)


def tap(p: StackPair, side: str, rule: Rule) -> Tap:
    """Filter what ``side`` ("a" or "b") sends."""
    link = p.link_a if side == "a" else p.link_b
    t = Tap(p, link.peer, rule)
    # ChannelEndpoint.peer is typed ChannelEndpoint; the channel only calls peer.inject()
    link.peer = t  # type: ignore[assignment]
    return t


def drop_nth_data(*numbers: int, first_only: bool = True) -> Rule:
    """Drop the data segments with these 1-based numbers (first transmissions only)."""
    seen: dict[int, int] = {}
    count = [0]

    def rule(seg: Seg | None) -> str | None:
        if seg is None or not seg.payload:
            return None
        if seg.seq in seen:
            return None if first_only else ("drop" if seen[seg.seq] in numbers else None)
        count[0] += 1
        seen[seg.seq] = count[0]
        return "drop" if count[0] in numbers else None

    return rule
