# SPDX-License-Identifier: MIT
"""Passive OPEN from a received SYN (RFC 9293 3.10.7.2): a new endpoint in SYN-RECEIVED,
registered on the SYN's exact 4-tuple. Listeners use it for their children; the
guest forwarder uses it (with no listener) once the host side of a flow connected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ustack.buffer import PacketBuffer
from ustack.transport.tcp import ecn
from ustack.transport.tcp.segment import ACK, Segment
from ustack.transport.tcp.state import State

if TYPE_CHECKING:
    from ustack.transport.tcp.endpoint import TCPEndpoint
    from ustack.transport.tcp.protocol import TCPProtocol

#: socket settings a child inherits from its listener
INHERITED = ("keepalive", "keepidle", "keepintvl", "keepcnt", "linger",
             "user_timeout", "maxseg", "ttl", "tos", "min_rto", "delayed_ack", "noopt")


def passive_open(protocol: TCPProtocol, seg: Segment, pkt: PacketBuffer, *,
                 template: TCPEndpoint | None = None, iss: int | None = None,
                 ) -> TCPEndpoint | None:
    """Answer ``seg`` (a SYN) with a SYN-ACK from a new endpoint; None if it cannot be
    registered. ``template`` lends its socket options; ``iss`` (a SYN cookie) recreates
    the endpoint from the final ACK instead, sending nothing."""
    from ustack.transport.tcp.endpoint import TCPEndpoint

    stack = protocol.stack
    child = TCPEndpoint(protocol, len(pkt.dst_addr))
    if template is not None:
        for name in INHERITED:
            setattr(child, name, getattr(template, name))
        child.receiver.rcvbuf = template.receiver.rcvbuf
        child.sender.sndbuf = template.sender.sndbuf
        child.sender.nodelay = template.sender.nodelay
        child.sender.set_congestion_control(template.sender.cc.name)
        child.sender.pacing = template.sender.pacing
        child.sender.max_pacing_rate = template.sender.max_pacing_rate
        # the listener's TCP stack, confirmed (or refused) at establishment (stacks.settle)
        child.sender.switch_stack(template.sender.tcp_stack)
    sport, dport = child.table_ports(pkt)
    try:
        child.route = stack.find_route(pkt.src_addr, pkt.dst_addr)
        child.binding = child.table.add_connected(child, pkt.dst_addr, dport, pkt.src_addr,
                                                  sport)
    except OSError:
        stack.stats.count("tcp.child_create_failed")
        return None
    child.local_addr, child.local_port = pkt.dst_addr, dport
    child.remote_addr, child.remote_port = pkt.src_addr, sport
    child.passive = True
    child.receiver.init(seg.seq)
    child.peer_syn_options = seg.options
    if iss is None:
        iss = protocol.isn(child.local_addr, dport, child.remote_addr, sport)
    child._start_connection(iss)
    child.negotiate(seg.options)
    ecn.on_syn(child, seg.flags)
    s = child.sender
    s.snd_wnd = seg.window  # a SYN's window is not scaled (RFC 7323 2.2)
    s.snd_wl1 = child.receiver.irs
    s.snd_wl2 = s.iss
    s.max_snd_wnd = seg.window
    child.state = State.SYN_RECEIVED
    stack.stats.count("tcp.passive_opens")
    if seg.flags & ACK:  # recreated from a SYN cookie
        child.syn_retries = 1  # the handshake RTT is unknown: take no sample from it
        return child
    child.send_synack()
    child.rto_timer.set(child.rto_delay(protocol.config.initial_rto))
    return child
