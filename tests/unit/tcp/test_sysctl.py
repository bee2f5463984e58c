# SPDX-License-Identifier: MIT
"""Sysctl names onto TCPConfig, and the personalities."""

from __future__ import annotations

import pytest

from ustack.transport.tcp import sysctl
from ustack.transport.tcp.config import TCPConfig
from ustack.transport.tcp.personality import PERSONALITIES, freebsd, linux


@pytest.mark.parametrize(("name", "value", "field", "expected"), [
    ("net.inet.tcp.sack.enable", "0", "sack", False),
    ("net.inet.tcp.recvspace", "65536", "rcvbuf", 65536),
    ("net.inet.tcp.rexmit_initial", "1000", "initial_rto", 1.0),
    ("net.inet.tcp.rexmit_slop", "200", "rto_slop", 0.2),
    ("net.inet.tcp.insecure_rst", "1", "rfc5961_rst", False),
    ("net.inet.tcp.insecure_syn", "0", "rfc5961_syn", True),
    ("net.inet.tcp.drop_synfin", "1", "drop_synfin", True),
    ("net.inet.tcp.ecn.enable", "2", "ecn", 2),
    ("net.inet.tcp.tolerate_missing_ts", "0", "tolerate_missing_ts", False),
    ("net.inet.tcp.ack_war_timewindow", "1000", "ack_war_window", 1.0),
    ("net.inet.tcp.ack_war_cnt", "5", "ack_war_count", 5),
    ("net.ipv4.tcp_timestamps", "0", "timestamps", False),
    ("net.ipv4.tcp_ecn", "1", "ecn", 1),
    ("net.ipv4.tcp_syncookies", "2", "syncookies", "always"),
    ("net.ipv4.tcp_invalid_ratelimit", "250", "invalid_ratelimit", 0.25),
])
def test_names_map_onto_settings(name: str, value: str, field: str, expected: object) -> None:
    config = TCPConfig()
    sysctl.apply(config, name, value)
    assert getattr(config, field) == expected


def test_compound_settings() -> None:
    config = TCPConfig()
    sysctl.apply(config, "net.inet.tcp.rfc1323", "0")
    assert not config.timestamps and not config.window_scaling
    sysctl.apply(config, "kern.ipc.maxsockbuf", "2097152")
    assert config.rcvbuf_max == config.sndbuf_max == 2097152
    sysctl.apply(config, "net.ipv4.tcp_rmem", "4096 87380 6291456")
    assert (config.rcvbuf, config.rcvbuf_max) == (87380, 6291456)
    sysctl.apply(config, "net.inet.tcp.syncookies", "0")
    assert config.syncookies == "never"


def test_unknown_and_unsupported() -> None:
    config = TCPConfig()
    with pytest.raises(sysctl.UnknownSysctl):
        sysctl.apply(config, "net.inet.tcp.no_such_knob", "1")
    with pytest.raises(sysctl.UnsupportedSysctl):
        sysctl.apply(config, "net.inet.tcp.blackhole", "2")  # ustack always answers RST
    with pytest.raises(sysctl.UnsupportedSysctl):
        sysctl.apply(config, "net.inet.tcp.sack.enable", "yes")
    sysctl.apply(config, "net.inet.tcp.blackhole", "0")


def test_personalities() -> None:
    assert linux() == TCPConfig()
    bsd = freebsd(rcvbuf=1000)
    assert (bsd.rcvbuf, bsd.sndbuf, bsd.syn_option_order, bsd.window_policy) == \
        (1000, 32768, "freebsd", "freebsd")
    assert set(PERSONALITIES) == {"linux", "freebsd"}
