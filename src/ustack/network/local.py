# SPDX-License-Identifier: MIT
"""What IPv4 and IPv6 endpoints share for packets that never reach a wire: loopback
delivery to our own addresses, and the local equivalent of an ICMP host unreachable
when link-address resolution gives up."""

from __future__ import annotations

from collections.abc import Callable

from ustack.buffer import PacketBuffer
from ustack.clock import Clock
from ustack.contracts import ControlKind, ControlMessage
from ustack.wire.proto import IPProto


def loop_back(clock: Clock, nic: object, handle: Callable[[PacketBuffer], None],
              pkt: PacketBuffer) -> None:
    """Deliver a packet to one of our own addresses back to ourselves, on the clock
    (never by recursion). Transport checksums need no checking: no wire was crossed."""
    data = pkt.to_bytes()

    def deliver() -> None:
        inbound = PacketBuffer(0, data)
        inbound.nic = nic
        inbound.checksum_verified = True
        handle(inbound)

    clock.call_soon(deliver)


def unreachable(src: bytes, dst: bytes, protocol: int, transport: bytes) -> ControlMessage | None:
    """A host-unreachable ControlMessage for an outbound packet's transport header."""
    quoted = transport[:8]
    if len(quoted) < 4 or (protocol in (IPProto.ICMP, IPProto.ICMPV6) and len(quoted) < 8):
        return None
    if protocol in (IPProto.ICMP, IPProto.ICMPV6):
        local = remote = int.from_bytes(quoted[4:6], "big")  # the echo identifier
    else:
        local, remote = int.from_bytes(quoted[0:2], "big"), int.from_bytes(quoted[2:4], "big")
    return ControlMessage(ControlKind.HOST_UNREACHABLE, src, dst, local, remote, 0, quoted, src)
