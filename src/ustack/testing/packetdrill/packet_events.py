# SPDX-License-Identifier: MIT
"""The script's packets: inbound ones mapped to live values, built and injected;
outbound ones awaited on the wire, mapped back to script values and compared.

The flow bookkeeping follows packetdrill's run_packet.c: an inbound packet for a
listening socket creates a child flow (with a fresh remote port and the packet's
sequence number as the remote ISN); an outbound SYN of a connecting socket makes it
"SYN sent"; the stack's SYN or SYN-ACK gives the live local ISN. Packets the stack
sends on other 4-tuples are passed over, as packetdrill passes them over.
"""

from __future__ import annotations

from collections.abc import Callable

from ustack.testing.packetdrill.calls import Unsupported
from ustack.testing.packetdrill.harness import Harness
from ustack.testing.packetdrill.icmp import icmp_packet
from ustack.testing.packetdrill.mapping import Flow, Flows, FlowState, MappingError
from ustack.testing.packetdrill.model import IcmpPacket, TcpOption, TcpPacket, TimeKind
from ustack.testing.packetdrill.packets import (
    ECN_BITS,
    Outbound,
    decode,
    encode_options,
    ethertype_of,
    flag_bits,
    ip_packet,
    tcp_segment,
)
from ustack.testing.packetdrill.result import Failure, Status
from ustack.testing.packetdrill.verify import Mismatch, Mode, check_packet, check_time, describe
from ustack.wire import tcp as wire
from ustack.wire.proto import IPProto

LATE_GRACE = 10_000_000  # usecs to keep waiting for a late packet, to report when it came
ANY_WAIT = 600_000_000  # how long '*' waits


class PacketEvents:
    def __init__(self, harness: Harness, flows: Flows, bind_port: int, mode: Mode,
                 tolerance: int, ts_tick: int, advance: Callable[[int, Callable[[], bool]], None],
                 after_input: Callable[[], None]) -> None:
        self.h = harness
        self.flows = flows
        self.bind_port = bind_port
        self.mode = mode
        self.tolerance = tolerance
        self.ts_tick = ts_tick
        self.advance = advance  # run the clock to a time, or until a condition holds
        self.after_input = after_input  # a blocked system call may return now
        self.local, self.remote = harness.addrs.packed()

    def _flow_for(self, pkt: TcpPacket) -> Flow:
        """packetdrill's find_or_create_socket_for_script_packet, for an inbound packet."""
        sut = self.flows.sut
        if sut is not None and sut.state is FlowState.LISTENING:
            child = self.flows.new(FlowState.PASSIVE_PACKET_RECEIVED)
            child.live_remote = (self.remote, self.flows.ephemeral_port())
            # the listener's port (packetdrill's --bind_port, or the one bound explicitly)
            port = sut.live_local[1] if sut.live_local else self.bind_port
            child.live_local = (self.local, port)
            child.remote_isn = pkt.seq
            return child
        if sut is None:
            raise Failure(pkt, "no matching socket for script packet", status=Status.ERROR)
        return sut

    def inbound(self, pkt: TcpPacket) -> None:
        flow = self._flow_for(pkt)
        has_ack = pkt.has(".")
        syn = pkt.has("S")
        if flow.state is FlowState.PASSIVE_SYNACK_SENT and has_ack:
            flow.state = FlowState.PASSIVE_SYNACK_ACKED
        elif flow.state is FlowState.ACTIVE_SYN_SENT and syn and has_ack:
            flow.state = FlowState.ACTIVE_SYN_ACKED
            flow.remote_isn = pkt.seq
        seq, ack = flow.live_seq_ack(pkt.seq, pkt.ack, syn, has_ack)
        options = b""
        if pkt.options:
            try:
                options = encode_options(tuple(self._live_option(flow, o, syn, has_ack)
                                               for o in pkt.options), pkt.line)
            except MappingError as exc:
                raise Failure(pkt, str(exc), status=Status.ERROR) from None
        if flow.live_remote is None or flow.live_local is None:
            flow = self.flows.new(FlowState.PASSIVE_PACKET_RECEIVED)
            flow.live_remote = (self.remote, self.flows.ephemeral_port())
            flow.live_local = (self.local, self.bind_port)
        (src, sport), (dst, dport) = flow.live_remote, flow.live_local
        if pkt.ports is not None:
            sport, dport = pkt.ports
        l4 = tcp_segment(src, dst, sport, dport, seq, ack, flag_bits(pkt.flags, pkt.line),
                         pkt.window or 0, options, bytes(pkt.length), pkt.urgent)
        ecn = ECN_BITS.get(pkt.ecn or "noecn", 0)
        self.h.inject(ip_packet(src, dst, IPProto.TCP, l4, ecn), ethertype_of(src))
        self.after_input()

    @staticmethod
    def _live_option(flow: Flow, opt: TcpOption, syn: bool, has_ack: bool) -> TcpOption:
        if opt.kind == "sack":
            return TcpOption("sack", flow.live_sack(opt.values, syn))
        if opt.kind == "TS" and has_ack:
            return TcpOption("TS", (opt.values[0], flow.live_ts_ecr(opt.values[1])))
        return opt

    def icmp(self, pkt: IcmpPacket) -> None:
        if not pkt.inbound:
            raise Unsupported("outbound ICMP packets")
        flow = self.flows.sut
        if flow is None or flow.live_local is None or flow.live_remote is None:
            raise Failure(pkt, "no connection for the ICMP packet to quote", status=Status.ERROR)
        (local, lport), (remote, rport) = flow.live_local, flow.live_remote
        seq = (pkt.echoed_seq + flow.local_offset(False)) & 0xFFFFFFFF
        quoted = lport.to_bytes(2, "big") + rport.to_bytes(2, "big") + seq.to_bytes(4, "big")
        self.h.inject(icmp_packet(pkt, remote, local, quoted), ethertype_of(remote))
        self.after_input()

    # --- outbound packets ----------------------------------------------------------------------

    def outbound(self, pkt: TcpPacket, start: int, end: int | None) -> None:
        sut = self.flows.sut
        if sut is None:
            raise Failure(pkt, "no matching socket for script packet", status=Status.ERROR)
        syn, has_ack = pkt.has("S"), pkt.has(".")
        if syn and not has_ack and sut.state is FlowState.ACTIVE_CONNECTING:
            sut.state = FlowState.ACTIVE_SYN_SENT
            sut.script_local_isn = pkt.seq
        synack_expected = sut.state is FlowState.PASSIVE_PACKET_RECEIVED and syn and has_ack
        if synack_expected:
            sut.script_local_isn = pkt.seq
        if pkt.time.kind is TimeKind.ANY:
            deadline = self.h.now_usecs() + ANY_WAIT
        else:
            deadline = max(end if end is not None else start, start) + self.tolerance + \
                LATE_GRACE
        live = self._sniff(sut, deadline)
        if live is None:
            raise Failure(pkt, "no packet was sent", pkt.describe(),
                          f"nothing by {deadline / 1e6:.6f} s")
        if synack_expected and live.flags & wire.SYN and live.flags & wire.ACK:
            sut.state = FlowState.PASSIVE_SYNACK_SENT
            sut.live_local_isn = live.seq
        ts_val = next((o.values[0] for o in pkt.options or () if o.kind == "TS"), None)
        actual = sut.to_script(live, ts_val)
        bad = check_packet(pkt, actual, self.mode, self.ts_tick, self.tolerance)
        if bad is None and self.mode is Mode.STRICT:
            bad = check_time(pkt.time.kind, start, end, live.time, self.tolerance)
        if bad is not None:
            raise Failure(pkt, bad.what, bad.expected, _got_text(actual, bad),
                          pkt.describe())

    def _sniff(self, flow: Flow, deadline: int) -> Outbound | None:
        """The next packet the stack sent on ``flow`` (others are passed over, as
        packetdrill passes over packets of other sockets)."""
        while True:
            item = self.h.take()
            if item is None:
                if self.h.now_usecs() >= deadline:
                    return None
                self.advance(deadline, self.h.pending)
                continue
            out = decode(*item)
            if out is None:
                continue
            if flow.is_outbound(out) or flow.claims_syn(out):
                return out


def _got_text(actual: Outbound, bad: Mismatch) -> str:
    return f"{bad.got}   [{describe(actual)}]"
