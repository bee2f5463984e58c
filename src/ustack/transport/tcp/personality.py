# SPDX-License-Identifier: MIT
"""Personalities: whole sets of defaults that make ustack's TCP behave, where the RFCs
leave a choice, like one well-known stack. The FreeBSD personality is what the
FreeBSD TCP test suite expects (see docs of the packetdrill runner); the Linux one
is ustack's own default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ustack.transport.tcp.config import TCPConfig


def linux(**overrides: Any) -> TCPConfig:
    """ustack's defaults (Linux's where Linux has one)."""
    return TCPConfig(**overrides)


def freebsd(**overrides: Any) -> TCPConfig:
    """FreeBSD's defaults (sys/netinet/tcp_*.c, FreeBSD 12/13)."""
    settings: dict[str, Any] = dict(
        rcvbuf=65536,  # net.inet.tcp.recvspace
        sndbuf=32768,  # net.inet.tcp.sendspace
        rcvbuf_max=2097152,  # kern.ipc.maxsockbuf: window scale 6 follows from it
        sndbuf_max=2097152,
        moderate_rcvbuf=False,  # its auto-sizing follows other rules; not modelled
        syn_option_order="freebsd",  # tcp_addoptions(): mss, nop, wscale, sackOK, TS
        initial_rto=1.0,  # net.inet.tcp.rexmit_initial
        min_rto=0.03,  # net.inet.tcp.rexmit_min
        delayed_ack=0.1,  # net.inet.tcp.delacktime
        quickack_segments=0,  # no quick ACKs at the start: every other segment, or 100 ms
        msl=30.0,  # net.inet.tcp.msl
        fin_timeout=60.0,  # net.inet.tcp.finwait2_timeout
        rto_slop=0.2,  # net.inet.tcp.rexmit_slop
        tolerate_missing_ts=True,  # net.inet.tcp.tolerate_missing_ts
        rfc5961_rst=True,  # net.inet.tcp.insecure_rst=0
        rfc5961_syn=True,  # net.inet.tcp.insecure_syn=0
        drop_synfin=False,  # net.inet.tcp.drop_synfin=0
        round_buffers_to_mss=True,  # tcp_mss(): roundup(sb_hiwat, mss)
        window_policy="freebsd",  # tcp_output(): recwin from sbspace()
        time_wait_policy="freebsd",  # tcp_twcheck()
        fin_with_acks=True,  # tcp_output(): snd_nxt-- resends the FIN with every ACK
        ecn=2,  # net.inet.tcp.ecn.enable: accept ECN when the peer asks for it
    )
    settings.update(overrides)
    return TCPConfig(**settings)


PERSONALITIES: dict[str, Callable[..., TCPConfig]] = {"linux": linux, "freebsd": freebsd}
