# SPDX-License-Identifier: MIT
"""What an endpoint does when its timers expire: retransmission (RFC 6298, with SYN
backoff and TCP_USER_TIMEOUT, RFC 5482), keepalive (RFC 1122 4.2.3.6), persist
(RFC 9293 3.8.6.1) and the end of TIME-WAIT or an orphaned FIN-WAIT-2."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ustack.transport.tcp.state import State
from ustack.wire import tcp as wire

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint

PERSIST_MIN = 0.002  # the shortest persist timeout (Linux TCP_TIMEOUT_MIN, 2 jiffies)


def on_rto_timer(ep: TCPEndpoint) -> None:
    """The retransmission timer: resend the SYN, or back off and resend data (RFC 6298 5)."""
    state = ep.state
    if state in (State.SYN_SENT, State.SYN_RECEIVED):
        _retransmit_syn(ep)
        return
    s = ep.sender
    if s.snd_max <= s.snd_una:
        return
    if ep.user_timed_out() or s.backoffs >= ep.config.retries2:
        ep.stack.stats.count("tcp.timeouts")
        ep.terminate(ep.soft_error or errno.ETIMEDOUT)
        return
    s.on_timeout()
    ep.flush_ack()


def _retransmit_syn(ep: TCPEndpoint) -> None:
    cfg = ep.config
    limit = cfg.syn_retries if ep.state is State.SYN_SENT else cfg.synack_retries
    if ep.syn_retries >= limit or ep.user_timed_out():
        ep.stack.stats.count("tcp.attempt_fails")
        ep.terminate(ep.soft_error or errno.ETIMEDOUT)
        return
    ep.syn_retries += 1
    ep.sender.retransmits_total += 1
    ep.stack.stats.count("tcp.syn_retransmits")
    if ep.state is State.SYN_SENT:
        ep.send_syn()
    else:
        ep.send_synack()
    # RFC 6298 5.7: SYN timeouts back off from the initial RTO
    ep.rto_timer.set(ep.rto_delay(min(cfg.initial_rto * (1 << ep.syn_retries),
                                          cfg.max_rto)))


def on_keepalive_timer(ep: TCPEndpoint) -> None:
    """RFC 1122 4.2.3.6: probe an idle connection; give up after keepcnt silences, or
    once the user timeout (when set) has passed since the last segment received."""
    if not ep.keepalive or ep.state not in (State.ESTABLISHED, State.CLOSE_WAIT,
                                                State.FIN_WAIT_2):
        return
    s = ep.sender
    if s.flight or s.unsent > 0 or (s.fin_queued and s.fin_seq is None):
        # RFC 9293 3.8.4, RFC 1122 4.2.3.6: probes are for an idle connection only. With
        # data in flight or waiting, the retransmission and persist timers watch the peer;
        # look again a full idle period later (as Linux's tcp_keepalive_timer).
        ep.keepalive_timer.set(ep.keepidle)
        return
    idle = ep.clock.now() - ep.last_recv
    if idle < ep.keepidle and ep.keepalive_probes == 0:
        ep.keepalive_timer.set(ep.keepidle - idle)
        return
    if ep.user_timeout:
        # RFC 5482 / Linux tcp_keepalive_timer: TCP_USER_TIMEOUT replaces TCP_KEEPCNT; the
        # connection ends once the peer was silent that long and at least one probe left
        expired = ep.keepalive_probes > 0 and idle >= ep.user_timeout - 1e-9
    else:
        expired = ep.keepalive_probes >= ep.keepcnt
    if expired:
        ep.stack.stats.count("tcp.keepalive_timeouts")
        ep.send_rst()  # as Linux: a peer that comes back learns the connection is gone
        ep.terminate(errno.ETIMEDOUT)
        return
    ep.keepalive_probes += 1
    ep.stack.stats.count("tcp.keepalive_probes")
    ep.emit(ep.sender.snd_una - 1, wire.ACK, b"", ep.data_options())
    ep.keepalive_timer.set(ep.keepintvl)


def on_persist_timer(ep: TCPEndpoint) -> None:
    """RFC 9293 3.8.6.1: probe a zero window (seq snd_una-1 draws an ACK with the window).

    RFC 1122 4.2.2.17: probing goes on as long as the peer answers. TCP_USER_TIMEOUT
    (RFC 5482) still bounds how long data may wait on a closed window, as in Linux's
    tcp_probe_timer (since 5.11): counted from the first probe, answered or not, until
    a usable window opens or data is acknowledged (arm_persist starts a new count)."""
    s = ep.sender
    if not ep.can_send_data() or s.unsent <= 0:
        ep.persist_since = None
        return
    if s.snd_wnd > 0:
        ep.persist_since = None
        s.output()
        return
    now = ep.clock.now()
    if ep.persist_since is None:
        ep.persist_since = now
    elif ep.user_timeout and now - ep.persist_since >= ep.user_timeout - 1e-9:
        ep.stack.stats.count("tcp.persist_timeouts")
        ep.terminate(ep.soft_error or errno.ETIMEDOUT)
        return
    ep.persist_probes += 1
    if ep.persist_probes > ep.config.retries2 and now - ep.last_recv > \
            ep.config.max_rto * 2:
        ep.terminate(errno.ETIMEDOUT)
        return
    ep.stack.stats.count("tcp.window_probes")
    ep.emit(s.snd_una - 1, wire.ACK, b"", ep.data_options())
    rto = min(s.rtt.rto * (1 << min(ep.persist_probes, 10)), ep.config.max_rto)
    if ep.user_timeout:
        # never sleep past the user timeout (Linux tcp_clamp_probe0_to_user_timeout)
        rto = min(rto, max(ep.persist_since + ep.user_timeout - now, PERSIST_MIN))
    ep.persist_timer.set(rto)


def on_wait_timer(ep: TCPEndpoint) -> None:
    """TIME-WAIT's 2*MSL ended, or an orphaned FIN-WAIT-2 timed out."""
    if ep.state in (State.TIME_WAIT, State.FIN_WAIT_2):
        ep.terminate(0)
