# SPDX-License-Identifier: MIT
"""The virtio-net header that a tap with ``IFF_VNET_HDR`` puts in front of every frame.

Layout from include/uapi/linux/virtio_net.h (``struct virtio_net_hdr_v1``)::

    u8   flags        NEEDS_CSUM | DATA_VALID | RSC_INFO
    u8   gso_type     NONE, TCPV4, UDP, TCPV6, UDP_L4, plus the ECN bit
    le16 hdr_len      bytes of headers to keep linear (a hint)
    le16 gso_size     segment payload size of a GSO super-frame
    le16 csum_start   where checksumming starts (from the frame's first byte)
    le16 csum_offset  where the checksum goes, counted from csum_start
    le16 num_buffers  (v1 only) receive buffers merged; 0 for a tap

ustack uses the 12-byte v1 header (``TUNSETVNETHDRSZ`` 12): the legacy 10-byte
layout is the same without ``num_buffers``. Fields are little-endian, the virtio
1.0 byte order (a big-endian host must also issue ``TUNSETVNETLE``). With
``NEEDS_CSUM`` the checksum field holds the pseudo-header sum and the reader
finishes the sum from ``csum_start`` (Documentation/networking/tuntap.rst,
Documentation/networking/checksum-offloads.rst).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

HEADER = struct.Struct("<BBHHHHH")
HEADER_LEN = HEADER.size  # 12: virtio_net_hdr_v1
LEGACY_HEADER_LEN = 10  # virtio_net_hdr

# flags
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
F_RSC_INFO = 4
_KNOWN_FLAGS = F_NEEDS_CSUM | F_DATA_VALID | F_RSC_INFO

# gso_type
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80
_KNOWN_GSO = frozenset((GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4))

#: A header asking for nothing: the frame is complete as it is.
EMPTY = bytes(HEADER_LEN)


class VnetHeader(NamedTuple):
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int
    csum_offset: int

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & F_NEEDS_CSUM)

    @property
    def checksum_ok(self) -> bool:
        """The transport checksum need not be verified: partial (local) or already checked."""
        return bool(self.flags & (F_NEEDS_CSUM | F_DATA_VALID))

    @property
    def gso(self) -> int:
        """The GSO type without the ECN bit."""
        return self.gso_type & ~GSO_ECN


def parse(data: Buffer, frame_len: int) -> VnetHeader:
    """Parse and check the header in front of a frame of ``frame_len`` bytes.

    Raises :class:`ParseError` for a header that no kernel would write: unknown
    flags or GSO type, a checksum position outside the frame, a GSO frame
    without a segment size.
    """
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "virtio_net_hdr")
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, _ = HEADER.unpack_from(data)
    if flags & ~_KNOWN_FLAGS:
        raise ParseError(DropReason.BAD_MESSAGE, f"virtio_net_hdr flags {flags:#x}")
    gso = gso_type & ~GSO_ECN
    if gso not in _KNOWN_GSO:
        raise ParseError(DropReason.BAD_MESSAGE, f"virtio_net_hdr gso_type {gso_type:#x}")
    if flags & F_NEEDS_CSUM and csum_start + csum_offset + 2 > frame_len:
        raise ParseError(DropReason.BAD_LENGTH, "virtio_net_hdr csum_start/csum_offset")
    if gso != GSO_NONE and gso_size == 0:
        raise ParseError(DropReason.BAD_LENGTH, "virtio_net_hdr gso_size 0")
    return VnetHeader(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def build(flags: int = 0, gso_type: int = GSO_NONE, hdr_len: int = 0, gso_size: int = 0,
          csum_start: int = 0, csum_offset: int = 0) -> bytes:
    return HEADER.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, 0)
