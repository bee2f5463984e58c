# SPDX-License-Identifier: MIT
"""The LinkEndpoint plumbing that links share, so each link module holds only its own I/O.

:class:`EthernetLink` is for links that carry Ethernet frames themselves (channel,
tap, qemu stream); :class:`WrappingLink` is for links that wrap another one and
stand between it and the NIC (sniffer, impairment).
"""

from __future__ import annotations

from ustack.contracts import LinkCapabilities, LinkEndpoint, NetworkDispatcher
from ustack.link.ethernet import HEADER_LEN


class EthernetLink:
    """Subclasses set ``_mtu``, ``_caps`` and ``_mac`` and deliver to ``_dispatcher``."""

    _mtu: int
    _caps: LinkCapabilities
    _mac: bytes
    _dispatcher: NetworkDispatcher | None = None

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def capabilities(self) -> LinkCapabilities:
        return self._caps

    @property
    def max_header_length(self) -> int:
        return HEADER_LEN

    @property
    def link_address(self) -> bytes:
        return self._mac

    def attach(self, dispatcher: NetworkDispatcher | None) -> None:
        self._dispatcher = dispatcher

    def is_attached(self) -> bool:
        return self._dispatcher is not None


class WrappingLink:
    """Presents ``inner``'s properties; frames from ``inner`` come to this object first
    (it is ``inner``'s dispatcher) and go on to ``_dispatcher``, the NIC."""

    inner: LinkEndpoint
    _dispatcher: NetworkDispatcher | None = None

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @property
    def capabilities(self) -> LinkCapabilities:
        return self.inner.capabilities

    @property
    def max_header_length(self) -> int:
        return self.inner.max_header_length

    @property
    def link_address(self) -> bytes:
        return self.inner.link_address

    def attach(self, dispatcher: NetworkDispatcher | None) -> None:
        self._dispatcher = dispatcher
        self.inner.attach(self if dispatcher is not None else None)  # type: ignore[arg-type]

    def is_attached(self) -> bool:
        return self._dispatcher is not None
