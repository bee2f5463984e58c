# SPDX-License-Identifier: MIT
"""TCP_INFO: a snapshot of one connection, named like Linux's struct tcp_info."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

OPT_TIMESTAMPS = 1  # Linux TCPI_OPT_*
OPT_SACK = 2
OPT_WSCALE = 4
OPT_ECN = 8  # RFC 3168 negotiated
OPT_ECN_SEEN = 16  # at least one segment arrived with ECT(0), ECT(1) or CE

# FreeBSD's TCPI_OPT_* (netinet/tcp.h): the first four bits mean what Linux's do, but bit
# 16 is TCPI_OPT_TOE (TCP offload engine), bit 32 TCPI_OPT_TFO and bit 64 TCPI_OPT_ACE
# (AccECN). FreeBSD has no "ECN seen" bit.
FREEBSD_OPT_TOE = 16
_FREEBSD_SHARED = OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE | OPT_ECN


def freebsd_options(options: int) -> int:
    """``TCPInfo.options`` (Linux's bits) as FreeBSD's tcpi_options: the shared bits as
    they are; OPT_ECN_SEEN dropped rather than read as TOE (there is no offload engine)."""
    return options & _FREEBSD_SHARED


@dataclass(frozen=True)
class TCPInfo:
    state: str
    ca_state: str  # "open", "disorder", "recovery", "loss"
    options: int
    snd_wscale: int
    rcv_wscale: int
    rto: float  # seconds
    rtt: float
    rttvar: float
    min_rtt: float
    snd_mss: int
    rcv_mss: int
    advmss: int
    cwnd: int  # bytes
    ssthresh: int
    snd_wnd: int
    rcv_wnd: int
    rcv_space: int  # the receive buffer after auto-tuning
    unacked: int  # bytes in flight
    sacked: int
    lost: int
    retransmits: int  # consecutive timeouts (backoff)
    total_retrans: int
    bytes_sent: int
    bytes_retrans: int
    bytes_acked: int
    bytes_received: int
    segs_out: int
    delivery_rate: float  # bytes per second
    delivery_rate_app_limited: bool
    congestion_control: str
    recovery: str
    pacing_rate: float
    # the TCP stack (stacks.py), pacing (pacing.py) and RACK-TLP (recovery/rack.py)
    tcp_stack: str = "default"
    pacing_spacing: float = 0.0  # measured mean gap before a paced send that waited (s)
    pacing_spacing_target: float = 0.0  # the gap the pacing rate asked for (s)
    pacing_waits: int = 0
    tlp_probes: int = 0
    rack_reo_wnd: float = 0.0
    cc_state: str = ""  # e.g. BBR's mode

    @property
    def timestamps(self) -> bool:
        return bool(self.options & OPT_TIMESTAMPS)

    @property
    def sack(self) -> bool:
        return bool(self.options & OPT_SACK)

    @property
    def wscale(self) -> bool:
        return bool(self.options & OPT_WSCALE)

    @property
    def ecn(self) -> bool:
        return bool(self.options & OPT_ECN)

    @property
    def ecn_seen(self) -> bool:
        return bool(self.options & OPT_ECN_SEEN)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(ep: TCPEndpoint) -> TCPInfo:
    s, r = ep.sender, ep.receiver
    options = (OPT_TIMESTAMPS if ep.ts_enabled else 0) | (OPT_SACK if ep.sack_enabled else 0) \
        | (OPT_WSCALE if s.wscale or r.wscale else 0) | (OPT_ECN if ep.ecn.ok else 0) \
        | (OPT_ECN_SEEN if ep.ecn.seen else 0)
    if s.recovery.in_recovery:
        ca_state = "recovery"
    elif s.backoffs:
        ca_state = "loss"
    elif s.recovery.dupacks or s.sendmap.sacked_bytes:
        ca_state = "disorder"
    else:
        ca_state = "open"
    rate = s.rate.latest
    return TCPInfo(
        state=ep.state.label, ca_state=ca_state, options=options, snd_wscale=s.wscale,
        rcv_wscale=r.wscale, rto=s.current_rto(), rtt=s.rtt.srtt, rttvar=s.rtt.rttvar,
        min_rtt=s.rtt.min_rtt, snd_mss=s.mss, rcv_mss=ep.rcv_mss, advmss=ep.advertised_mss(),
        cwnd=s.cc.cwnd, ssthresh=min(s.cc.ssthresh, 0x7FFFFFFF), snd_wnd=s.snd_wnd,
        rcv_wnd=max(r.rcv_adv - r.rcv_nxt, 0), rcv_space=r.rcvbuf, unacked=s.flight,
        sacked=s.sendmap.sacked_bytes, lost=s.sendmap.lost_bytes, retransmits=s.backoffs,
        total_retrans=s.retransmits_total, bytes_sent=s.bytes_sent,
        bytes_retrans=s.bytes_retrans, bytes_acked=s.bytes_acked,
        bytes_received=r.bytes_received, segs_out=s.segs_out, delivery_rate=rate.rate,
        delivery_rate_app_limited=rate.app_limited, congestion_control=s.cc.name,
        recovery=s.recovery.name, pacing_rate=s.pacing_rate(),
        tcp_stack=s.tcp_stack.name,
        pacing_spacing=s.pacer.spacing if s.pacer is not None else 0.0,
        pacing_spacing_target=s.pacer.target_spacing if s.pacer is not None else 0.0,
        pacing_waits=s.pacer.waits if s.pacer is not None else 0,
        tlp_probes=getattr(s.recovery, "tlp_probes", 0),
        rack_reo_wnd=getattr(s.recovery, "reo_wnd", 0.0),
        cc_state=str(getattr(getattr(s.cc, "mode", None), "value", "")))
