# SPDX-License-Identifier: MIT
"""Robustness: damaged input is dropped and counted, never raised, and the stack survives.

Two levels: 100,000 frames (random, truncated, bit-flipped and re-checksummed
mutations of valid frames of every kind) injected into a live stack with sockets
open; and every ``parse*`` function of :mod:`ustack.wire` fed random and mutated
input, which must return or raise :class:`ParseError` and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import pkgutil
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

import ustack.wire
from tests.unit.wire_frames import Endpoints, Mutator, templates
from ustack.link import channel
from ustack.stats import Stats
from ustack.testing.pair import A4, A6, B4, B6, StackPair, make_pair
from ustack.wire import DropReason, ParseError, icmp4, icmp6

SEED = 0x5EED_0001
FRAMES = 100_000
BATCH = 500
UDP_PORT = 7
CONNECTED_PORT = 4001
PEER_PORT = 4000
PING_IDENT = 0x4242
DROP_NAMES = {reason.name.lower() for reason in DropReason}


def packed(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def drop_reasons(stats: Stats) -> set[str]:
    """The reason part of every ``drop.<reason>`` and ``<layer>.drop.<reason>`` counter."""
    out = set()
    for name in stats.counters:
        if name.startswith("drop."):
            out.add(name[len("drop."):])
        elif ".drop." in name:
            out.add(name.split(".drop.", 1)[1])
    return out


def drain(sock: Any) -> int:
    n = 0
    while True:
        try:
            sock.recvfrom(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return n
        except OSError:
            continue  # a queued ICMP error surfaces once as an exception
        n += 1


def round_trips(pair: StackPair) -> list[str]:
    """What still fails between a and b: UDP both ways over v4 and v6, and pings.

    Neighbor entries the fuzz poisoned (a mutated ARP or NA can teach b a wrong MAC
    for a) recover the RFC 4861 way: stale, probed, forgotten, resolved again. So
    each exchange retries once a (virtual) second for up to a minute.
    """
    failures = []
    for family, addr_a, addr_b in ((socket.AF_INET, A4, B4), (socket.AF_INET6, A6, B6)):
        sa = pair.a.socket(family, socket.SOCK_DGRAM)
        sb = pair.b.socket(family, socket.SOCK_DGRAM)
        sa.bind((addr_a, 5001))
        sb.bind((addr_b, 5002))
        if not _exchange(pair, sa, b"after fuzz", (addr_b, 5002), sb):
            failures.append(f"udp a->b {family.name}")
        if not _exchange(pair, sb, b"after fuzz", (addr_a, 5001), sa):
            failures.append(f"udp b->a {family.name}")
        sa.close()
        sb.close()
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        request = icmp4.ECHO_REQUEST if family == socket.AF_INET else icmp6.ECHO_REQUEST
        for label, stack, dest in (("a->b", pair.a, addr_b), ("b->a", pair.b, addr_a)):
            ping = stack.socket(family, socket.SOCK_DGRAM, proto)
            echo = bytes((request, 0)) + bytes(6) + b"alive"
            if not _exchange(pair, ping, echo, (dest, 0), ping):
                failures.append(f"ping {label} {family.name}")
            ping.close()
    return failures


def _exchange(pair: StackPair, sender: Any, data: bytes, dest: tuple[str, int],
              receiver: Any) -> bool:
    """Send until something arrives at ``receiver`` (a reply, for a ping socket)."""
    for _ in range(60):
        with contextlib.suppress(OSError):
            sender.sendto(data, dest)
        pair.run(1.0)
        if drain(receiver):
            return True
    return False


@pytest.fixture
def fuzz_pair(monkeypatch: pytest.MonkeyPatch) -> StackPair:
    # the same MAC addresses whatever ran before in this process: a deterministic run
    monkeypatch.setattr(channel, "_mac_counter", itertools.count(0x100))
    return make_pair()


def test_fuzz_stack_with_100k_frames(fuzz_pair: StackPair) -> None:
    pair = fuzz_pair
    ep = Endpoints(pair.link_a.link_address, pair.link_b.link_address, packed(A4), packed(B4),
                   packed(A6), packed(B6), UDP_PORT, CONNECTED_PORT, PEER_PORT, PING_IDENT)
    # endpoints on b for the frames to reach
    sockets = []
    for family, addr in ((socket.AF_INET, B4), (socket.AF_INET6, B6)):
        s = pair.b.socket(family, socket.SOCK_DGRAM)
        s.bind((addr, UDP_PORT))
        sockets.append(s)
        ping = pair.b.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_ICMP
                             if family == socket.AF_INET else socket.IPPROTO_ICMPV6)
        ping.bind((addr, PING_IDENT))
        sockets.append(ping)
    connected = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    connected.bind((B4, CONNECTED_PORT))
    connected.connect((A4, PEER_PORT))
    sockets.append(connected)
    any4 = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    any4.bind(("0.0.0.0", 68))
    sockets.append(any4)

    corpus = templates(ep)
    mutator = Mutator(corpus, SEED)
    delivered = 0
    started = time.perf_counter()
    for n in range(FRAMES):
        label, frame = mutator.next()
        try:
            pair.link_b.inject(frame)
        except Exception as exc:  # report the frame that did it
            raise AssertionError(f"frame {n} ({label}) raised {exc!r}: {frame.hex()}") from exc
        if n % BATCH == BATCH - 1:
            pair.run(0.25)
            delivered += sum(drain(s) for s in sockets)
    pair.run(60.0)  # let reassembly and neighbor timers expire
    delivered += sum(drain(s) for s in sockets)
    elapsed = time.perf_counter() - started
    print(f"\n{FRAMES} frames in {elapsed:.1f}s; mutations {mutator.kinds}")

    stats = {"b": pair.b.stats, "a": pair.a.stats, "b.nic": pair.nic_b.stats,
             "b.link": pair.link_b.stats, "a.nic": pair.nic_a.stats, "a.link": pair.link_a.stats}
    for name, bag in stats.items():
        unknown = drop_reasons(bag) - DROP_NAMES
        assert not unknown, f"{name}: drop counters without a DropReason: {unknown}"
    reasons = drop_reasons(pair.b.stats) | drop_reasons(pair.link_b.stats)
    print(f"drops by reason: {sorted(reasons)}")
    assert len(reasons) >= 10, reasons
    for expected in ("truncated", "bad_checksum", "bad_length", "bad_option",
                     "bad_extension_header", "hop_limit_invalid"):
        assert expected in reasons
    assert pair.link_b.stats["rx_frames"] >= FRAMES  # ours, plus what a answered
    assert delivered > 1000  # frames got all the way to the sockets, not only dropped
    counters = pair.b.stats.counters
    assert counters["icmp4.echo_replied"] > 100 and counters["icmp6.echo_replied"] > 100
    assert counters["ipv4.reassembled"] > 0 and counters["ipv6.reassembled"] > 0
    for s in sockets:
        s.close()
    assert round_trips(pair) == []
    assert elapsed < 45, f"fuzzing took {elapsed:.1f}s"


# --- the parsers alone ------------------------------------------------------------------

def wire_parsers() -> list[tuple[str, Callable[..., Any]]]:
    """Every ``parse*`` function (and ``walk_extensions``) of every ustack.wire module."""
    found: list[tuple[str, Callable[..., Any]]] = []
    for info in pkgutil.iter_modules(ustack.wire.__path__):
        module = importlib.import_module(f"ustack.wire.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__:
                continue
            if name.startswith("parse") or name == "walk_extensions":
                found.append((f"{info.name}.{name}", fn))
    return found


_TEXT = {"text"}  # text parsers (parse_mac) take str, not wire bytes
_BUFFERS = {"data", "frame", "msg", "buf", "buffer", "payload", "packet", "segment", "raw",
            "view"}
_ADDRESSES = {"src", "dst", "src_addr", "dst_addr"}
_FLAGS = {"verify_checksum", "quoted", "multicast_dst", "first"}


def call_with_random_arguments(fn: Callable[..., Any], data: bytes,
                               rng: random.Random) -> Any:
    """Call a parser with ``data`` and plausible random values for its other arguments."""
    kwargs: dict[str, Any] = {}
    size = rng.choice((4, 16))
    for param in inspect.signature(fn).parameters.values():
        name = param.name
        if name in _BUFFERS:
            kwargs[name] = rng.choice((data, memoryview(data), bytearray(data)))
        elif name in _ADDRESSES:
            kwargs[name] = rng.randbytes(size)
        elif name in _FLAGS:
            kwargs[name] = rng.random() < 0.5
        elif name in ("offset", "start", "end"):  # positions inside the buffer (a contract)
            kwargs[name] = rng.randrange(len(data) + 1)
        elif name.endswith(("_len", "length")):
            kwargs[name] = rng.randrange(len(data) + 100)
        elif name in ("next_header", "protocol", "kind"):
            kwargs[name] = rng.choice((0, 43, 44, 60, 6, 17, 58, rng.randrange(256)))
        elif param.default is inspect.Parameter.empty:
            raise AssertionError(f"{fn.__module__}.{fn.__name__}: no rule for argument "
                                 f"{name!r}; teach call_with_random_arguments about it")
    if "end" in kwargs and "start" in kwargs and kwargs["end"] < kwargs["start"]:
        kwargs["start"], kwargs["end"] = kwargs["end"], kwargs["start"]
    return fn(**kwargs)


def test_parsers_return_or_raise_parse_error() -> None:
    parsers = [(n, f) for n, f in wire_parsers()
               if not set(inspect.signature(f).parameters) & _TEXT]
    names = {n for n, _ in parsers}
    assert {"ethernet.parse", "arp.parse", "ipv4.parse", "ipv6.parse", "ipv6.walk_extensions",
            "icmp4.parse", "icmp6.parse", "udp.parse", "tcp.parse", "tcp.parse_options",
            "ndp.parse_options", "ndp.parse_neighbor_solicitation",
            "ndp.parse_neighbor_advertisement", "ndp.parse_router_advertisement",
            "ndp.parse_router_solicitation"} <= names
    ep = Endpoints(b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02", packed(A4), packed(B4),
                   packed(A6), packed(B6), UDP_PORT, CONNECTED_PORT, PEER_PORT, PING_IDENT)
    mutator = Mutator(templates(ep), SEED + 1)
    rng = random.Random(SEED + 2)
    outcomes = {name: [0, 0] for name in names}  # returned, raised ParseError
    for _ in range(3000):
        _, frame = mutator.next()
        # start at a layer boundary (or anywhere) so each parser sees its own header
        start = rng.choice((0, 14, 18, 34, 42, 54, 62, rng.randrange(len(frame) + 1)))
        data = frame[start:]
        for name, fn in parsers:
            try:
                call_with_random_arguments(fn, data, rng)
            except ParseError as err:
                assert isinstance(err.reason, DropReason)
                outcomes[name][1] += 1
            except Exception as exc:
                raise AssertionError(f"{name} raised {exc!r} on {data.hex()}") from exc
            else:
                outcomes[name][0] += 1
    for name, (returned, raised) in outcomes.items():
        assert raised > 0, f"{name} never rejected anything"
        assert returned > 0, f"{name} never accepted anything"
