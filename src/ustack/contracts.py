# SPDX-License-Identifier: MIT
"""The contracts between the layers, on one page (in the spirit of netstack's registration.go).

A frame's way up: a :class:`LinkEndpoint` hands frames to its
:class:`NetworkDispatcher` (the NIC), which picks the :class:`NetworkEndpoint`
for the EtherType; that endpoint validates and reassembles, then hands the
payload to the :class:`TransportDispatcher` (the stack), which finds the
:class:`TransportEndpoint` by its 4-tuple or offers the packet to the
:class:`TransportProtocol`'s ``handle_unknown_destination``.

Protocols are plugged in as factories: ``Stack(network=[ipv4.factory, ...],
transport=[udp.factory, ...])``. Addresses are ``bytes`` (4 or 16 long) inside
the stack; conversion to text happens at the API edge.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ustack.buffer import PacketBuffer

if TYPE_CHECKING:
    from ustack.nic import NIC
    from ustack.route import Route
    from ustack.stack import Stack


# --- link layer ----------------------------------------------------------------------------

class LinkCapabilities(enum.Flag):
    NONE = 0
    RX_CHECKSUM_OFFLOAD = enum.auto()  # inbound transport checksums already verified
    TX_CHECKSUM_OFFLOAD = enum.auto()  # the link finishes partial transport checksums
    RESOLUTION_REQUIRED = enum.auto()  # next hops need a link address (ARP/NDP)
    LOOPBACK = enum.auto()
    GSO = enum.auto()  # accepts TCP super-packets and segments them itself


class NetworkDispatcher(Protocol):
    """Receives frames from a link endpoint (implemented by the NIC)."""

    def deliver_network_packet(self, ethertype: int, pkt: PacketBuffer) -> None: ...


class LinkEndpoint(Protocol):
    """Moves frames. Outbound packets carry ``dst_link`` and ``network_protocol``."""

    @property
    def mtu(self) -> int: ...

    @property
    def capabilities(self) -> LinkCapabilities: ...

    @property
    def max_header_length(self) -> int: ...

    @property
    def link_address(self) -> bytes: ...

    def attach(self, dispatcher: NetworkDispatcher | None) -> None: ...

    def is_attached(self) -> bool: ...

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        """Write a batch; returns how many were accepted (the rest are dropped)."""
        ...

    def close(self) -> None: ...


# --- network layer -------------------------------------------------------------------------

class TransportDispatcher(Protocol):
    """Receives transport payloads and ICMP errors from network endpoints (the stack)."""

    def deliver_transport_packet(self, protocol: int, pkt: PacketBuffer) -> DeliveryResult: ...

    def deliver_transport_control(self, protocol: int, error: ControlMessage,
                                  pkt: PacketBuffer) -> bool:
        """Hand an ICMP error to the endpoint it is about; False when no endpoint took it
        (none matched, or its ``handle_control`` returned False)."""
        ...


class DeliveryResult(enum.Enum):
    DELIVERED = "delivered"
    PORT_UNREACHABLE = "port unreachable"  # the network layer answers with ICMP
    UNKNOWN_PROTOCOL = "protocol unreachable"
    DROPPED = "dropped"  # malformed; already counted


class ControlKind(enum.Enum):
    """ICMP errors as the transport layer sees them (netstack's ControlType)."""

    PORT_UNREACHABLE = "port unreachable"
    HOST_UNREACHABLE = "host unreachable"
    NET_UNREACHABLE = "network unreachable"
    PROTOCOL_UNREACHABLE = "protocol unreachable"
    ADMIN_PROHIBITED = "administratively prohibited"
    PACKET_TOO_BIG = "packet too big"
    TTL_EXCEEDED = "time exceeded"
    PARAMETER_PROBLEM = "parameter problem"


class ControlMessage(NamedTuple):
    """An ICMP error about a packet we sent: the quoted packet's addresses and ports."""

    kind: ControlKind
    local_addr: bytes  # the quoted packet's source (ours)
    remote_addr: bytes  # the quoted packet's destination
    local_port: int
    remote_port: int
    mtu: int  # next-hop MTU for PACKET_TOO_BIG, else 0
    quoted: bytes  # the quoted transport header bytes (at least 8 when present)
    reporter: bytes  # who sent the ICMP error


class NetworkEndpoint(Protocol):
    """One network protocol on one NIC."""

    def handle_packet(self, pkt: PacketBuffer) -> None: ...

    def write_packet(self, route: Route, pkt: PacketBuffer, protocol: int, ttl: int,
                     tos: int) -> None: ...

    @property
    def mtu(self) -> int:
        """The largest payload this endpoint can send unfragmented."""
        ...

    @property
    def max_header_length(self) -> int:
        """Headroom below the transport layer: network plus link headers."""
        ...

    def close(self) -> None: ...


class NetworkProtocol(Protocol):
    @property
    def number(self) -> int:
        """The EtherType."""
        ...

    @property
    def name(self) -> str: ...

    def new_endpoint(self, nic: NIC, dispatcher: TransportDispatcher) -> NetworkEndpoint: ...


NetworkProtocolFactory = Callable[["Stack"], NetworkProtocol]


class LinkAddressResolver(Protocol):
    """A network protocol that can find link addresses (ARP for IPv4, NDP for IPv6)."""

    @property
    def resolves(self) -> int:
        """The EtherType of the protocol whose addresses it resolves."""
        ...

    def link_address_request(self, nic: NIC, target: bytes, local: bytes | None,
                             remote_link: bytes | None) -> None:
        """Send a request (broadcast, or unicast to ``remote_link`` to reconfirm)."""
        ...

    def static_link_address(self, addr: bytes) -> bytes | None:
        """The link address of broadcast and multicast addresses, which need no request."""
        ...


# --- transport layer -----------------------------------------------------------------------

class TransportEndpointID(NamedTuple):
    local_addr: bytes
    local_port: int
    remote_addr: bytes
    remote_port: int


class TransportEndpoint(Protocol):
    def handle_packet(self, pkt: PacketBuffer) -> None: ...

    def handle_control(self, error: ControlMessage, pkt: PacketBuffer) -> bool | None:
        """An ICMP error about this endpoint. Return False when it quotes nothing the
        endpoint has in flight (RFC 5927 4.1): the network layer then undoes what the
        error would have changed (a path MTU). None (or True) accepts it."""
        ...


class TransportProtocol(Protocol):
    @property
    def number(self) -> int:
        """The IP protocol number."""
        ...

    @property
    def name(self) -> str: ...

    def parse_ports(self, pkt: PacketBuffer) -> tuple[int, int] | None:
        """(source port, destination port) of an inbound packet, or None if malformed."""
        ...

    def handle_unknown_destination(self, pkt: PacketBuffer) -> DeliveryResult:
        """No endpoint matched: answer it, forward it, or ask for an ICMP error."""
        ...


TransportProtocolFactory = Callable[["Stack"], TransportProtocol]


# --- multicast group membership --------------------------------------------------------------

class GroupMembershipProtocol(Protocol):
    """IGMP (IPv4) or MLD (IPv6): keeps a NIC's multicast memberships and reports them."""

    @property
    def address_size(self) -> int:
        """4 or 16: the family whose groups it manages."""
        ...

    def join(self, nic: NIC, group: bytes) -> None:
        """Add a reference; the first one joins the group and reports it."""
        ...

    def leave(self, nic: NIC, group: bytes) -> bool:
        """Drop a reference (False if none); the last one leaves and reports it."""
        ...

    def nic_enabled(self, nic: NIC) -> None: ...

    def nic_removed(self, nic_id: int) -> None: ...


GroupProtocolFactory = Callable[["Stack"], GroupMembershipProtocol]
