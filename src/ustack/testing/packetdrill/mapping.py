# SPDX-License-Identifier: MIT
"""Script values <-> live values, as packetdrill maps them (its socket.h and run_packet.c).

A :class:`Flow` is packetdrill's "socket": the connection a script talks about.
The remote side's sequence numbers are the script's own, relative to the remote
ISN (the sequence number of the packet that created the flow, or of the SYN-ACK);
SYN packets carry them absolute. The stack's sequence numbers are relative to its
live ISN, learnt from its SYN or SYN-ACK. The first outbound TS val anchors the
stack's timestamps: later ones are shown as ``first script val + live delta``,
and inbound TS ecr values are mapped back through the TS vals seen so far.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from ustack.testing.packetdrill.packets import Outbound
from ustack.wire import tcp as wire

MASK = 0xFFFFFFFF
Addr = tuple[bytes, int]


class FlowState(enum.Enum):
    INIT = "init"
    LISTENING = "listening"
    PASSIVE_PACKET_RECEIVED = "passive packet received"
    PASSIVE_SYNACK_SENT = "passive SYN-ACK sent"
    PASSIVE_SYNACK_ACKED = "passive SYN-ACK acked"
    ACTIVE_CONNECTING = "active connecting"
    ACTIVE_SYN_SENT = "active SYN sent"
    ACTIVE_SYN_ACKED = "active SYN-ACK received"


class MappingError(Exception):
    pass


@dataclass
class Flow:
    state: FlowState = FlowState.INIT
    live_local: Addr | None = None
    live_remote: Addr | None = None
    script_local_isn: int = 0
    live_local_isn: int = 0
    remote_isn: int = 0  # the runner picks the remote's live ISN: the script's
    ts_map: dict[int, int] = field(default_factory=dict)  # script TS val -> live TS val
    first_ts: tuple[int, int] | None = None  # (script, live) of the first TS val

    # --- offsets (packetdrill's socket.h) -----------------------------------------------------

    def remote_offset(self, syn: bool) -> int:
        return 0 if syn else self.remote_isn

    def local_offset(self, syn: bool) -> int:
        return (self.live_local_isn - self.script_local_isn) if syn else self.live_local_isn

    # --- inbound -------------------------------------------------------------------------------

    def live_seq_ack(self, seq: int, ack: int, syn: bool, has_ack: bool) -> tuple[int, int]:
        live_ack = (ack + self.local_offset(syn)) & MASK if has_ack else ack
        return (seq + self.remote_offset(syn)) & MASK, live_ack

    def live_sack(self, edges: tuple[int, ...], syn: bool) -> tuple[int, ...]:
        offset = self.local_offset(syn)
        return tuple((e + offset) & MASK for e in edges)

    def live_ts_ecr(self, script_ecr: int) -> int:
        if script_ecr not in self.ts_map:
            raise MappingError(f"unable to find mapping for timestamp ecr {script_ecr}")
        return self.ts_map[script_ecr]

    # --- outbound ------------------------------------------------------------------------------

    def is_outbound(self, out: Outbound) -> bool:
        return self.live_local == (out.src, out.sport) and \
            self.live_remote == (out.dst, out.dport)

    def claims_syn(self, out: Outbound) -> bool:
        """A connecting flow takes the stack's SYN as its own: its local address, port
        and ISN become known (find_connect_for_live_packet)."""
        if self.state is not FlowState.ACTIVE_SYN_SENT or self.live_remote is None:
            return False
        if out.flags & (wire.SYN | wire.ACK) != wire.SYN:
            return False
        if (out.dst, out.dport) != self.live_remote:
            return False
        self.live_local = (out.src, out.sport)
        self.live_local_isn = out.seq
        return True

    def to_script(self, out: Outbound, script_ts_val: int | None) -> Outbound:
        """``out`` with its numbers moved to script space (a copy)."""
        syn = bool(out.flags & wire.SYN)
        seq = (out.seq - self.local_offset(syn)) & MASK
        ack = (out.ack - self.remote_offset(syn)) & MASK if out.flags & wire.ACK else out.ack
        options = self._script_options(out.options, syn, script_ts_val)
        return Outbound(out.time, out.src, out.dst, out.sport, out.dport, seq, ack, out.flags,
                        out.window, out.urgent, options, out.payload, out.ecn, out.reserved,
                        out.checksums_ok)

    def _script_options(self, raw: bytes, syn: bool, script_ts_val: int | None) -> bytes:
        out = bytearray(raw)
        i = 0
        while i < len(out):
            kind = out[i]
            if kind in (0, 1):
                i += 1
                continue
            length = out[i + 1] if i + 1 < len(out) else 0
            if length < 2 or i + length > len(out):
                break
            if kind == 5 and (length - 2) % 8 == 0:  # SACK edges: remote sequence space
                for j in range(i + 2, i + length, 4):
                    (edge,) = struct.unpack_from("!I", out, j)
                    struct.pack_into("!I", out, j, (edge - self.remote_offset(syn)) & MASK)
            elif kind == 8 and length == 10 and script_ts_val is not None:
                (live,) = struct.unpack_from("!I", out, i + 2)
                self.ts_map[script_ts_val] = live
                if self.first_ts is None:
                    self.first_ts = (script_ts_val, live)
                first_script, first_live = self.first_ts
                struct.pack_into("!I", out, i + 2, (first_script + live - first_live) & MASK)
            i += length
        return bytes(out)


class Flows:
    """Every flow of a script, and the one under test (packets go to and from it)."""

    def __init__(self, first_ephemeral_port: int = 40001) -> None:
        self.all: list[Flow] = []
        self.sut: Flow | None = None
        self._next_port = first_ephemeral_port

    def new(self, state: FlowState = FlowState.INIT, under_test: bool = True) -> Flow:
        flow = Flow(state)
        self.all.append(flow)
        if under_test:
            self.sut = flow
        return flow

    def ephemeral_port(self) -> int:
        """The remote port of a flow the script's peer opens (packetdrill binds port 0)."""
        port = self._next_port
        self._next_port += 1
        return port
