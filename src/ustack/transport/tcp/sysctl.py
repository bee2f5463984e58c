# SPDX-License-Identifier: MIT
"""System-wide TCP knobs by their sysctl names (FreeBSD's net.inet.tcp.*, Linux's
net.ipv4.tcp_*), mapped onto :class:`TCPConfig` fields.

A name not listed raises :class:`UnknownSysctl`; a value the stack cannot honour
(a knob whose only supported setting is the one ustack implements) raises
:class:`UnsupportedSysctl`. Settings apply to sockets created afterwards, as on
both systems; the challenge-ACK limits (tcp_challenge_ack_limit, ack_war_*) are
read when used, so they apply to existing connections at once, as on both systems.
"""

from __future__ import annotations

from collections.abc import Callable

from ustack.transport.tcp.config import TCPConfig

Setter = Callable[[TCPConfig, str], None]


class UnknownSysctl(KeyError):
    pass


class UnsupportedSysctl(ValueError):
    pass


def _int(text: str) -> int:
    return int(text.strip(), 0)


def _field(name: str, convert: Callable[[str], object] = _int) -> Setter:
    def setter(config: TCPConfig, value: str) -> None:
        setattr(config, name, convert(value))

    return setter


def _flag(name: str, invert: bool = False) -> Setter:
    return _field(name, lambda v: (_int(v) != 0) != invert)


def _ms(name: str) -> Setter:
    return _field(name, lambda v: _int(v) / 1000.0)


def _only(*values: str) -> Setter:
    """A knob whose behaviour ustack has only in these settings (no setting to change)."""

    def setter(config: TCPConfig, value: str) -> None:
        if value.strip() not in values:
            raise UnsupportedSysctl(f"only {' or '.join(values)} is supported")

    return setter


def _noop(config: TCPConfig, value: str) -> None:
    """An action with nothing to act on in ustack (there is no host cache to purge)."""


def _rfc1323(config: TCPConfig, value: str) -> None:
    """FreeBSD: bit 0 window scaling, bit 1 timestamps (1 means both, for history)."""
    n = _int(value)
    config.window_scaling = n in (1, 2)
    config.timestamps = n in (1, 3)


def _buffers(low: str, high: str) -> Setter:
    def setter(config: TCPConfig, value: str) -> None:
        setattr(config, low, _int(value))
        setattr(config, high, max(getattr(config, high), _int(value)))

    return setter


def _maxsockbuf(config: TCPConfig, value: str) -> None:
    config.rcvbuf_max = config.sndbuf_max = _int(value)


def _linux_mem(default: str, maximum: str) -> Setter:
    """tcp_rmem / tcp_wmem: "min default max"."""

    def setter(config: TCPConfig, value: str) -> None:
        parts = value.split()
        if len(parts) != 3:
            raise UnsupportedSysctl("expected three numbers: min default max")
        setattr(config, default, _int(parts[1]))
        setattr(config, maximum, _int(parts[2]))

    return setter


def _syncookies_freebsd(config: TCPConfig, value: str) -> None:
    if _int(value) == 0:
        config.syncookies = "never"
    elif config.syncookies == "never":
        config.syncookies = "auto"


def _syncookies_only(config: TCPConfig, value: str) -> None:
    if _int(value):
        config.syncookies = "always"
    elif config.syncookies == "always":
        config.syncookies = "auto"


def _syncookies_linux(config: TCPConfig, value: str) -> None:
    config.syncookies = {0: "never", 1: "auto", 2: "always"}.get(_int(value), "auto")


FREEBSD: dict[str, Setter] = {
    "net.inet.tcp.rfc1323": _rfc1323,
    "net.inet.tcp.sack.enable": _flag("sack"),
    "net.inet.tcp.recvspace": _buffers("rcvbuf", "rcvbuf_max"),
    "net.inet.tcp.sendspace": _buffers("sndbuf", "sndbuf_max"),
    "kern.ipc.maxsockbuf": _maxsockbuf,
    "net.inet.tcp.rexmit_initial": _ms("initial_rto"),
    "net.inet.tcp.rexmit_min": _ms("min_rto"),
    "net.inet.tcp.delacktime": _ms("delayed_ack"),
    "net.inet.tcp.msl": _ms("msl"),
    "net.inet.tcp.mssdflt": _field("default_mss"),
    "net.inet.tcp.keepidle": _ms("keepalive_idle"),
    "net.inet.tcp.keepintvl": _ms("keepalive_interval"),
    "net.inet.tcp.keepcnt": _field("keepalive_count"),
    "net.inet.tcp.finwait2_timeout": _ms("fin_timeout"),
    "net.inet.tcp.cc.algorithm": _field("congestion_control", str.strip),
    "net.inet.tcp.syncookies": _syncookies_freebsd,
    "net.inet.tcp.syncookies_only": _syncookies_only,
    "net.inet.tcp.rexmit_slop": _ms("rto_slop"),
    "net.inet.tcp.tolerate_missing_ts": _flag("tolerate_missing_ts"),
    "net.inet.tcp.insecure_rst": _flag("rfc5961_rst", invert=True),
    "net.inet.tcp.insecure_syn": _flag("rfc5961_syn", invert=True),
    "net.inet.tcp.drop_synfin": _flag("drop_synfin"),
    "net.inet.tcp.hostcache.purgenow": _noop,
    "net.inet.tcp.blackhole": _only("0"),
    "net.inet.tcp.rexmit_drop_options": _only("0"),
    "net.inet.tcp.ecn.enable": _field("ecn"),
    "net.inet.tcp.ack_war_timewindow": _ms("ack_war_window"),
    "net.inet.tcp.ack_war_cnt": _field("ack_war_count"),
}

LINUX: dict[str, Setter] = {
    "net.ipv4.tcp_sack": _flag("sack"),
    "net.ipv4.tcp_dsack": _flag("dsack"),
    "net.ipv4.tcp_timestamps": _flag("timestamps"),
    "net.ipv4.tcp_window_scaling": _flag("window_scaling"),
    "net.ipv4.tcp_syncookies": _syncookies_linux,
    "net.ipv4.tcp_rmem": _linux_mem("rcvbuf", "rcvbuf_max"),
    "net.ipv4.tcp_wmem": _linux_mem("sndbuf", "sndbuf_max"),
    "net.ipv4.tcp_moderate_rcvbuf": _flag("moderate_rcvbuf"),
    "net.ipv4.tcp_congestion_control": _field("congestion_control", str.strip),
    "net.ipv4.tcp_syn_retries": _field("syn_retries"),
    "net.ipv4.tcp_synack_retries": _field("synack_retries"),
    "net.ipv4.tcp_retries2": _field("retries2"),
    "net.ipv4.tcp_fin_timeout": _field("fin_timeout", lambda v: float(_int(v))),
    "net.ipv4.tcp_keepalive_time": _field("keepalive_idle", lambda v: float(_int(v))),
    "net.ipv4.tcp_keepalive_intvl": _field("keepalive_interval", lambda v: float(_int(v))),
    "net.ipv4.tcp_keepalive_probes": _field("keepalive_count"),
    "net.ipv4.tcp_max_syn_backlog": _field("max_syn_backlog"),
    "net.ipv4.tcp_challenge_ack_limit": _field("challenge_ack_limit"),
    "net.ipv4.tcp_invalid_ratelimit": _ms("invalid_ratelimit"),
    "net.ipv4.tcp_ecn": _field("ecn"),
}

TABLES = {"freebsd": FREEBSD, "linux": LINUX}


def apply(config: TCPConfig, name: str, value: str) -> None:
    """Set ``name`` (either system's spelling) to ``value`` in ``config``."""
    setter = FREEBSD.get(name) or LINUX.get(name)
    if setter is None:
        raise UnknownSysctl(name)
    try:
        setter(config, value)
    except ValueError as exc:
        if isinstance(exc, UnsupportedSysctl):
            raise
        raise UnsupportedSysctl(f"bad value {value!r}") from exc
