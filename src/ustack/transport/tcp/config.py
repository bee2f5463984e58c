# SPDX-License-Identifier: MIT
"""Stack-wide TCP settings: the knobs Linux keeps in net.ipv4.tcp_* and FreeBSD in
net.inet.tcp.*. Sockets copy what they need at creation; socket options override."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TCPConfig:
    # RFC 6298 and Linux's bounds
    initial_rto: float = 1.0
    min_rto: float = 0.2
    max_rto: float = 120.0
    clock_granularity: float = 0.001
    syn_retries: int = 6  # ~127 s of SYN retransmissions, as Linux
    synack_retries: int = 5
    retries2: int = 15  # data retransmissions before giving up (Linux tcp_retries2)
    # delayed ACKs (RFC 1122 4.2.3.2: at most 500 ms, every second full segment)
    delayed_ack: float = 0.04
    delayed_ack_segments: int = 2
    quickack_segments: int = 16  # ACK at once at the start of a connection
    # TIME-WAIT: 2*MSL, and how long an orphaned FIN-WAIT-2 lives
    msl: float = 30.0
    fin_timeout: float = 60.0
    # keepalive (RFC 1122 4.2.3.6; Linux defaults)
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    # options (RFC 7323, RFC 2018)
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    dsack: bool = True
    # buffers
    rcvbuf: int = 131072
    rcvbuf_max: int = 6 * 1024 * 1024
    sndbuf: int = 262144
    sndbuf_max: int = 4 * 1024 * 1024
    moderate_rcvbuf: bool = True
    # listen queues and SYN cookies ("auto": when the SYN queue is full; "always"; "never")
    syncookies: str = "auto"
    max_syn_backlog: int = 256
    # RFC 5961 challenge ACKs per second (Linux tcp_challenge_ack_limit)
    challenge_ack_limit: int = 1000
    rfc5961: bool = True
    # and per connection, as FreeBSD (net.inet.tcp.ack_war_timewindow, ack_war_cnt): at
    # most ack_war_count in each ack_war_window seconds; 0 in either turns it off
    ack_war_window: float = 0.0
    ack_war_count: int = 0
    # answers to out-of-window pure ACKs, per connection (Linux tcp_invalid_ratelimit)
    invalid_ratelimit: float = 0.5
    # strategies by name
    congestion_control: str = "newreno"
    tcp_stack: str = "default"  # stacks.py (FreeBSD's net.inet.tcp.functions_default)
    pacing: bool = False  # pace every connection (at 120-200% of cwnd/SRTT, as Linux)
    max_burst: int = 10  # segments a burst-mitigating stack (rack) sends back to back
    rack_require_sack: bool = False  # the rack stack refuses peers without SACK
    # the segment layout of SYN options: "linux" or "freebsd"
    syn_option_order: str = "linux"
    default_mss: int = 536  # RFC 9293 3.7.1 when the peer sends no MSS option
    # RFC 3168 ECN: 0 off, 1 request it and accept it, 2 accept it when the peer asks
    # (Linux's tcp_ecn, FreeBSD's net.inet.tcp.ecn.enable)
    ecn: int = 0
    # choices where FreeBSD differs (sysctl.py maps net.inet.tcp.* onto them)
    rto_slop: float = 0.0  # added to every RTO computed from samples (FreeBSD: 200 ms)
    tolerate_missing_ts: bool = True  # RFC 7323 3.2: False drops non-RST segments lacking TS
    rfc5961_rst: bool = True  # RFC 5961 3.2 (False: RFC 793, any in-window RST resets)
    rfc5961_syn: bool = True  # RFC 5961 4.2 (False: RFC 793, an in-window SYN resets)
    drop_synfin: bool = True  # drop segments with SYN and FIN (False: take them as SYNs)
    round_buffers_to_mss: bool = False  # FreeBSD tcp_mss(): buffers become MSS multiples
    # the receive window: "rfc" (RFC 9293 3.8.6.2.2: the edge moves by min(BUF/2, MSS) or
    # not at all) or "freebsd" (tcp_output(): the free space; 0 below min(BUF/4, MSS))
    window_policy: str = "rfc"
    time_wait_policy: str = "rfc"  # "freebsd": tcp_twcheck() (ACK all but duplicate ACKs)
    fin_with_acks: bool = False  # FreeBSD: ACKs sent while our FIN is unacked carry it again
