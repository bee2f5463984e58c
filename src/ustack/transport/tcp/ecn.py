# SPDX-License-Identifier: MIT
"""Explicit Congestion Notification for one connection (RFC 3168 6.1).

The handshake turns it on: an "ECN-setup SYN" carries ECE and CWR, an "ECN-setup
SYN-ACK" ECE only (6.1.1). ``TCPConfig.ecn`` says whether we ask (1) or only accept
when asked (2). Once on, new data leaves with ECT(0) in the IP header (never
retransmissions, 6.1.5, nor pure ACKs, 6.1.4); a CE mark on arriving data makes our
ACKs carry ECE until a segment with CWR arrives (6.1.3); an ECE from the peer halves
the congestion window at most once per window of data, and the next new data segment
carries CWR (6.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ustack.transport.tcp.segment import ACK, SYN, Segment
from ustack.transport.tcp.seqnum import unwrap
from ustack.wire.tcp import CWR, ECE

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

NOT_ECT = 0
ECT0 = 2
CE = 3
REQUEST = 1  # TCPConfig.ecn: ask for ECN in our SYNs (and accept it)
ACCEPT = 2  # TCPConfig.ecn: use it when the peer asks


@dataclass
class EcnState:
    ok: bool = False  # negotiated
    echo: bool = False  # a CE mark was seen: ACKs carry ECE until CWR arrives
    send_cwr: bool = False  # we reduced the window: tell the peer on the next new data
    recover: int = 0  # no new reduction for ECEs acknowledging data below this
    echoed: bool = False  # the segment being processed carries ECE: it grows no window
    seen: bool = False  # a segment arrived with ECT or CE (Linux TCP_ECN_SEEN)


def syn_flags(ep: TCPEndpoint) -> int:
    """ECE and CWR on our SYN when we ask for ECN."""
    return ECE | CWR if ep.config.ecn == REQUEST else 0


def synack_flags(ep: TCPEndpoint) -> int:
    return ECE if ep.ecn.ok else 0


def accepts_syn(setting: int, flags: int) -> bool:
    """An ECN-setup SYN (ECE and CWR) that the ``TCPConfig.ecn`` setting agrees to."""
    return setting in (REQUEST, ACCEPT) and flags & (ECE | CWR) == ECE | CWR


def on_syn(ep: TCPEndpoint, flags: int) -> None:
    """The peer's SYN (passive open, or simultaneous open): an ECN-setup SYN is taken."""
    ep.ecn.ok = accepts_syn(ep.config.ecn, flags)


def on_synack(ep: TCPEndpoint, flags: int) -> None:
    """The SYN-ACK of our SYN: ECN is on if we asked and it answered ECE without CWR."""
    ep.ecn.ok = ep.config.ecn == REQUEST and bool(flags & ECE) and not flags & CWR


def on_segment(ep: TCPEndpoint, seg: Segment, tos: int) -> None:
    """Every segment of a synchronized connection, with its IP header's ECN bits."""
    state = ep.ecn
    state.echoed = False
    if not state.ok or seg.flags & SYN:
        return
    state.echoed = bool(seg.flags & ECE)
    if seg.flags & CWR:
        state.echo = False
    if tos & 3 != NOT_ECT:
        state.seen = True  # TCP_INFO's TCPI_OPT_ECN_SEEN
    if tos & 3 == CE:
        state.echo = True
        ep.stack.stats.count("tcp.ecn_ce_received")
    if seg.flags & ECE and seg.flags & ACK:
        _react(ep, unwrap(seg.ack, ep.sender.snd_una))


def _react(ep: TCPEndpoint, ack: int) -> None:
    s = ep.sender
    state = ep.ecn
    if ack <= state.recover or s.recovery.in_recovery or s.flight == 0:
        return  # once per window; loss recovery has reduced the window already
    s.cc.on_congestion(s.flight, ep.clock.now())
    state.send_cwr = True
    state.recover = s.snd_max
    ep.stack.stats.count("tcp.ecn_reductions")


def outgoing(ep: TCPEndpoint, seq: int, flags: int, length: int) -> tuple[int, int]:
    """(TCP flags, IP ECN bits) for a segment about to leave."""
    state = ep.ecn
    if not state.ok or flags & SYN:
        return flags, NOT_ECT
    if state.echo and flags & ACK:
        flags |= ECE
    if length and seq >= ep.sender.snd_max:  # new data (RFC 3168 6.1.5: not resent data)
        if state.send_cwr:
            flags |= CWR
            state.send_cwr = False
        return flags, ECT0
    return flags, NOT_ECT
