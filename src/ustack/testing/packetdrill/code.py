# SPDX-License-Identifier: MIT
"""``%{ python }%`` blocks: run with the ``tcpi_*`` fields of the socket's TCP_INFO.

The fields are named and scaled as the personality's TCP_INFO has them: times in
microseconds; the congestion window and ssthresh in segments on Linux, in bytes
on FreeBSD. ``tcpi_options`` has the personality's bits, named ``TCPI_OPT_*``
(bit 16 is TCPI_OPT_TOE on FreeBSD, never set here, and TCPI_OPT_ECN_SEEN on
Linux). ``tcpi_state`` uses the personality's numbering, and both the ``TCPI_*``
(FreeBSD scripts) and ``TCP_*`` (Linux scripts) state names are defined with
those numbers.
"""

from __future__ import annotations

import re
from typing import Any

from ustack.transport.tcp import info as tcp_info
from ustack.transport.tcp.info import TCPInfo, freebsd_options

LINUX_STATES = {"ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4,
                "FIN_WAIT_2": 5, "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9,
                "LISTEN": 10, "CLOSING": 11}
FREEBSD_STATES = {"CLOSED": 0, "LISTEN": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3,
                  "ESTABLISHED": 4, "CLOSE_WAIT": 5, "FIN_WAIT_1": 6, "CLOSING": 7,
                  "LAST_ACK": 8, "FIN_WAIT_2": 9, "TIME_WAIT": 10}
_ALIASES = {"SYN_RECV": "SYN_RECEIVED", "FIN_WAIT1": "FIN_WAIT_1", "FIN_WAIT2": "FIN_WAIT_2",
            "CLOSE": "CLOSED"}
_OPTIONS = {"TCPI_OPT_TIMESTAMPS": tcp_info.OPT_TIMESTAMPS, "TCPI_OPT_SACK": tcp_info.OPT_SACK,
            "TCPI_OPT_WSCALE": tcp_info.OPT_WSCALE, "TCPI_OPT_ECN": tcp_info.OPT_ECN}
FREEBSD_OPTIONS = {**_OPTIONS, "TCPI_OPT_TOE": tcp_info.FREEBSD_OPT_TOE}
LINUX_OPTIONS = {**_OPTIONS, "TCPI_OPT_ECN_SEEN": tcp_info.OPT_ECN_SEEN}
CA_STATES = {"open": 0, "disorder": 1, "cwr": 2, "recovery": 3, "loss": 4}


class CodeFailed(Exception):
    pass


def namespace(info: TCPInfo, personality: str) -> dict[str, Any]:
    freebsd = personality == "freebsd"
    states = FREEBSD_STATES if freebsd else LINUX_STATES
    names: dict[str, Any] = dict(FREEBSD_OPTIONS if freebsd else LINUX_OPTIONS)
    for name, number in states.items():
        names[f"TCPI_{name}"] = names[f"TCP_{name}"] = number
    for alias, name in _ALIASES.items():
        names[f"TCPI_{alias}"] = names[f"TCP_{alias}"] = states[name]
    mss = max(info.snd_mss, 1)
    usecs = 1_000_000
    names.update(
        tcpi_state=states[info.state.replace("-", "_")], tcpi_ca_state=CA_STATES[info.ca_state],
        tcpi_options=freebsd_options(info.options) if freebsd else info.options,
        tcpi_snd_wscale=info.snd_wscale,
        tcpi_rcv_wscale=info.rcv_wscale, tcpi_rto=round(info.rto * usecs),
        tcpi_rtt=round(info.rtt * usecs), tcpi_rttvar=round(info.rttvar * usecs),
        tcpi_min_rtt=round(info.min_rtt * usecs), tcpi_snd_mss=info.snd_mss,
        tcpi_rcv_mss=info.rcv_mss, tcpi_advmss=info.advmss,
        tcpi_snd_cwnd=info.cwnd if freebsd else info.cwnd // mss,
        tcpi_snd_ssthresh=info.ssthresh if freebsd else info.ssthresh // mss,
        tcpi_snd_wnd=info.snd_wnd, tcpi_rcv_wnd=info.rcv_wnd, tcpi_rcv_space=info.rcv_space,
        tcpi_unacked=-(-info.unacked // mss), tcpi_sacked=-(-info.sacked // mss),
        tcpi_lost=-(-info.lost // mss), tcpi_retransmits=info.retransmits,
        tcpi_total_retrans=info.total_retrans, tcpi_bytes_sent=info.bytes_sent,
        tcpi_bytes_retrans=info.bytes_retrans, tcpi_bytes_acked=info.bytes_acked,
        tcpi_bytes_received=info.bytes_received, tcpi_segs_out=info.segs_out,
        tcpi_delivery_rate=round(info.delivery_rate),
        tcpi_delivery_rate_app_limited=int(info.delivery_rate_app_limited),
        tcpi_pacing_rate=round(info.pacing_rate))
    return names


def run_code(text: str, info: TCPInfo, personality: str) -> None:
    """Run a block; raises CodeFailed with the values its names had."""
    names = namespace(info, personality)
    source = "\n".join(line.strip() for line in text.strip().splitlines())
    try:
        exec(compile(source, "<packetdrill code>", "exec"), {"__builtins__": __builtins__},
             names)
    except AssertionError as exc:
        used = sorted(set(re.findall(r"\btcpi_\w+", source)))
        values = ", ".join(f"{n} = {names.get(n)!r}" for n in used)
        raise CodeFailed(f"{source} failed" + (f" ({values})" if values else "") +
                         (f": {exc}" if str(exc) else "")) from None
    except Exception as exc:
        raise CodeFailed(f"{source}: {type(exc).__name__}: {exc}") from None
