# SPDX-License-Identifier: MIT
"""A TAP link endpoint: Ethernet frames through /dev/net/tun, with virtio-net offloads.

The tap is opened with ``IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`` and a 12-byte
``virtio_net_hdr_v1`` (``TUNSETVNETHDRSZ``) in front of every frame, in both
directions (Documentation/networking/tuntap.rst, include/uapi/linux/if_tun.h,
include/uapi/linux/virtio_net.h; the header format is :mod:`ustack.wire.vnet`).

Offloads, negotiated with ``TUNSETOFFLOAD`` (``TUN_F_CSUM | TUN_F_TSO4 |
TUN_F_TSO6``, falling back to ``TUN_F_CSUM`` alone, then none):

- *Kernel to ustack*: the kernel may send frames whose transport checksum is
  partial (``NEEDS_CSUM``: the field holds only the pseudo-header sum) or already
  checked (``DATA_VALID``); such frames are marked ``checksum_verified`` one by
  one. It may also send TCP super-frames of up to 64 KiB (``gso_type`` TCPV4 or
  TCPV6); they go up as one big frame, which ustack's receivers accept.
- *ustack to kernel*: a packet with ``csum_partial`` goes out with ``NEEDS_CSUM``
  and a packet with ``gso_size`` as a TCP GSO super-frame that the kernel
  segments. The link then advertises TX_CHECKSUM_OFFLOAD and GSO.

It never advertises RX_CHECKSUM_OFFLOAD: that would vouch for every frame,
including those the kernel sent with a complete (unverified) checksum.

The fd is non-blocking. :meth:`TapEndpoint.start` registers it with an asyncio
loop; each readiness callback drains up to ``batch`` frames so the loop stays
fair. Each outbound packet is one ``writev(vnet header, headers, payload)``:
the payload is never copied. Errors on either path are counted, never raised.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
import sys
from collections.abc import Sequence

from ustack.buffer import PacketBuffer
from ustack.contracts import LinkCapabilities, NetworkDispatcher
from ustack.link.base import EthernetLink
from ustack.link.ethernet import HEADER_LEN, deliver_frame, push_header
from ustack.stats import Stats
from ustack.wire import vnet
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import EtherType

TUN_PATH = "/dev/net/tun"

# include/uapi/linux/if_tun.h: _IOW('T', nr, int) == 0x40045400 | nr (and _IOR 0x8004...)
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNGETIFF = 0x800454D2
TUNSETVNETHDRSZ = 0x400454D8
TUNSETVNETLE = 0x400454DC
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY instead of attaching to an existing device
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04

IFNAMSIZ = 16
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, ifr_flags, padding to 40 bytes
_INT = struct.Struct("i")

MIN_MTU = 68  # RFC 791: the smallest MTU every IPv4 link must carry
MAX_MTU = 65520  # the largest the tun driver allows (MAX_MTU in drivers/net/tun.c)
DEFAULT_BATCH = 256
#: Read buffer: a 64 KiB GSO super-frame, an Ethernet header, a VLAN tag, the vnet header.
_RX_BUFFER = 1 << 17
_FULL_OFFLOAD = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6

_TX_ERRORS = {
    errno.EAGAIN: DropReason.QUEUE_FULL,
    errno.ENOBUFS: DropReason.QUEUE_FULL,
    errno.EIO: DropReason.LINK_DOWN,  # the kernel side of the tap is down
}


class TapError(OSError):
    """A tap could not be set up; the message says what to do about it."""


def random_mac() -> bytes:
    """A random locally administered unicast MAC (IEEE 802: U/L bit set, I/G bit clear)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def open_tap(name: str, path: str = TUN_PATH) -> tuple[int, str]:
    """Create a non-persistent tap ``name`` with a vnet header; returns (fd, actual name).

    The device lives as long as the fd. ``IFF_TUN_EXCL`` makes an existing
    device of that name an error rather than something to attach to.
    """
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"bad interface name {name!r}: 1 to {IFNAMSIZ - 1} bytes, no '/' or ' '")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TapError(errno.ENOENT, f"{path} is missing: load the tun module "
                       "(modprobe tun) or pass the device into the container") from None
    except PermissionError as exc:
        raise _privilege_error(exc.errno or errno.EACCES, path) from None
    try:
        request = _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL)
        try:
            reply = fcntl.ioctl(fd, TUNSETIFF, request)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                raise _privilege_error(errno.EPERM, "TUNSETIFF") from None
            if exc.errno in (errno.EBUSY, errno.EEXIST, errno.EINVAL):
                raise TapError(errno.EBUSY, f"interface name {name!r} is already in use: "
                               "pick another name or delete that device") from None
            raise
        actual = _IFREQ.unpack(reply)[0].rstrip(b"\0").decode()
    except BaseException:
        os.close(fd)
        raise
    return fd, actual


def _privilege_error(code: int, what: str) -> TapError:
    return TapError(code, f"{what}: creating a tap device needs CAP_NET_ADMIN: run as root "
                    "or inside a user and network namespace (unshare -rn)")


def negotiate_offloads(fd: int, wanted: int = _FULL_OFFLOAD) -> int:
    """Ask for ``wanted`` TUN_F_* offloads, falling back step by step; returns what was set.

    The flags say what *we* can take from the kernel (partial checksums, TSO
    super-frames). An unknown combination is EINVAL, so try less each time.
    """
    for flags in (wanted, wanted & TUN_F_CSUM):
        if not flags:
            break
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, flags)
        except OSError:
            continue
        return flags
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
    except OSError:
        pass
    return 0


class TapEndpoint(EthernetLink):
    """A LinkEndpoint over a tap fd that has ``IFF_VNET_HDR`` (see :func:`open_tap`)."""

    def __init__(self, fd: int, *, name: str = "", mtu: int = 1500, mac: bytes | None = None,
                 offload: bool = True, batch: int = DEFAULT_BATCH) -> None:
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise ValueError(f"tap MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")
        if mac is not None and (len(mac) != 6 or mac[0] & 1):
            raise ValueError("the link address must be a 6-byte unicast MAC")
        self._fd = fd
        self.name = name
        self._mtu = mtu
        self._mac = mac if mac is not None else random_mac()
        self.batch = max(1, batch)
        self.stats = Stats()
        self._dispatcher: NetworkDispatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: the read error that stopped receiving (the device went away), if any
        self.error: OSError | None = None
        self._setup_vnet(fd)
        self.offloads = negotiate_offloads(fd) if offload else negotiate_offloads(fd, 0)
        caps = LinkCapabilities.RESOLUTION_REQUIRED
        if self.offloads & TUN_F_CSUM:
            caps |= LinkCapabilities.TX_CHECKSUM_OFFLOAD
            if self.offloads & (TUN_F_TSO4 | TUN_F_TSO6) == TUN_F_TSO4 | TUN_F_TSO6:
                caps |= LinkCapabilities.GSO
        self._caps = caps
        self._rxbuf = bytearray(_RX_BUFFER)
        self._rxview = memoryview(self._rxbuf)
        #: vnet headers for checksum-only offload, by (csum_start, csum_offset)
        self._csum_headers: dict[tuple[int, int], bytes] = {}

    @classmethod
    def open(cls, name: str, *, mtu: int = 1500, mac: bytes | None = None,
             offload: bool = True, batch: int = DEFAULT_BATCH,
             path: str = TUN_PATH) -> TapEndpoint:
        """Create the tap ``name`` in the current network namespace."""
        fd, actual = open_tap(name, path)
        try:
            return cls(fd, name=actual, mtu=mtu, mac=mac, offload=offload, batch=batch)
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _setup_vnet(fd: int) -> None:
        try:
            flags = _IFREQ.unpack(fcntl.ioctl(fd, TUNGETIFF, bytes(_IFREQ.size)))[1]
        except OSError as exc:
            raise TapError(exc.errno or errno.EBADFD,
                           "not an attached tun/tap fd: open it with open_tap()") from None
        if flags & (IFF_TAP | IFF_VNET_HDR) != IFF_TAP | IFF_VNET_HDR or not flags & IFF_NO_PI:
            raise TapError(errno.EINVAL, "the fd must be a tap opened with IFF_TAP | "
                           "IFF_NO_PI | IFF_VNET_HDR")
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, _INT.pack(vnet.HEADER_LEN))
        if sys.byteorder == "big":  # virtio 1.0 headers are little-endian
            fcntl.ioctl(fd, TUNSETVNETLE, _INT.pack(1))
        os.set_blocking(fd, False)

    # --- LinkEndpoint -------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        self._closed = True
        self._dispatcher = None
        os.close(self._fd)

    # --- receive ------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read frames whenever the fd is readable, on ``loop`` (the stack's loop)."""
        if self._closed:
            raise OSError(errno.EBADF, "the tap is closed")
        self.stop()
        self._loop = loop
        loop.add_reader(self._fd, self.read_batch)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def read_batch(self) -> int:
        """Drain up to ``batch`` frames (until EAGAIN); returns how many were read."""
        if self._closed:
            return 0
        fd, buf = self._fd, self._rxbuf
        count = 0
        while count < self.batch:
            try:
                n = os.readv(fd, (buf,))
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                self._read_failed(exc)
                break
            count += 1
            self._receive(n)
        return count

    def _receive(self, n: int) -> None:
        view = self._rxview
        stats = self.stats
        hlen = vnet.HEADER_LEN
        if n < hlen + HEADER_LEN:
            stats.drop("tap.rx", DropReason.TRUNCATED)
            return
        flags, gso_type = view[0], view[1]
        verified = False
        if flags or gso_type:
            try:
                hdr = vnet.parse(view, n - hlen)
            except ParseError as err:
                stats.drop("tap.rx", err.reason)
                stats.count("tap.rx_bad_vnet")
                return
            if hdr.gso in (vnet.GSO_UDP, vnet.GSO_UDP_L4):  # never negotiated (no TUN_F_USO)
                stats.drop("tap.rx", DropReason.BAD_MESSAGE)
                stats.count("tap.rx_bad_vnet")
                return
            verified = hdr.checksum_ok
            if hdr.needs_csum:
                stats.counters["tap.rx_csum_partial"] += 1
            if hdr.gso != vnet.GSO_NONE:
                stats.counters["tap.rx_gso"] += 1
        counters = stats.counters
        counters["tap.rx_frames"] += 1
        counters["tap.rx_bytes"] += n - hlen
        deliver_frame(bytes(view[hlen:n]), self._mac, self._dispatcher, stats,
                      promiscuous=True, checksum_verified=verified)

    def _read_failed(self, exc: OSError) -> None:
        """A read error other than EAGAIN means the device is gone: stop reading."""
        self.error = exc
        self.stats.drop("tap.rx", DropReason.LINK_DOWN)
        self.stats.count(f"tap.rx_error.{errno.errorcode.get(exc.errno or 0, 'unknown')}")
        self.stop()

    # --- send ---------------------------------------------------------------------------------

    def write_packets(self, pkts: Sequence[PacketBuffer]) -> int:
        if self._closed:  # never write to a recycled fd number
            self.stats.count("tap.tx_closed", len(pkts))
            return 0
        fd, mac = self._fd, self._mac
        counters = self.stats.counters
        written = 0
        for pkt in pkts:
            push_header(pkt, mac)
            header = vnet.EMPTY if pkt.csum_partial is None and not pkt.gso_size \
                else self._offload_header(pkt)
            if header is None:
                continue
            headers, body = pkt.views()
            try:
                os.writev(fd, (header, headers, body))
            except OSError as exc:
                self._write_failed(exc)
                continue
            written += 1
            counters["tap.tx_frames"] += 1
            counters["tap.tx_bytes"] += len(headers) + len(body)
        return written

    def _offload_header(self, pkt: PacketBuffer) -> bytes | None:
        """The vnet header asking the kernel to finish a checksum and/or segment (TSO)."""
        frame_len = len(pkt)
        partial = pkt.csum_partial
        if partial is None:
            # a GSO super-packet whose checksum is complete cannot be segmented correctly:
            # the kernel adjusts the pseudo-header sum per segment (tcp_gso_segment)
            self.stats.drop("tap.tx", DropReason.BAD_SEGMENT)
            self.stats.count("tap.tx_gso_without_csum")
            return None
        transport_len, field = partial
        start = frame_len - transport_len
        if start < HEADER_LEN or start + field + 2 > frame_len:
            self.stats.drop("tap.tx", DropReason.BAD_LENGTH)
            return None
        self.stats.counters["tap.tx_csum_partial"] += 1
        if not pkt.gso_size:
            # the same few headers over and over (one per header layout): built once each
            key = (start, field)
            header = self._csum_headers.get(key)
            if header is None:
                header = self._csum_headers[key] = vnet.build(
                    vnet.F_NEEDS_CSUM, vnet.GSO_NONE, start + field + 2, 0, start, field)
            return header
        proto = pkt.network_protocol
        if proto == EtherType.IPV4:
            gso_type = vnet.GSO_TCPV4
        elif proto == EtherType.IPV6:
            gso_type = vnet.GSO_TCPV6
        else:
            self.stats.drop("tap.tx", DropReason.BAD_SEGMENT)
            return None
        # hdr_len: through the TCP header (data offset, RFC 9293 3.1); CWR asks for ECN GSO
        tcp_bytes = self._frame_bytes(pkt, start + 12, 2)
        if len(tcp_bytes) < 2:
            self.stats.drop("tap.tx", DropReason.TRUNCATED)
            return None
        offset_byte, flags_byte = tcp_bytes
        if flags_byte & 0x80:
            gso_type |= vnet.GSO_ECN
        self.stats.counters["tap.tx_gso"] += 1
        return vnet.build(vnet.F_NEEDS_CSUM, gso_type, start + (offset_byte >> 4) * 4,
                          pkt.gso_size, start, field)

    @staticmethod
    def _frame_bytes(pkt: PacketBuffer, offset: int, length: int) -> bytes:
        """``length`` bytes of the outbound frame at ``offset``, headers or payload."""
        headers = pkt.headers()
        hlen = len(headers)
        if offset + length <= hlen:
            return bytes(headers[offset:offset + length])
        head = bytes(headers[offset:]) if offset < hlen else b""
        start = max(0, offset - hlen)
        return head + bytes(pkt.body()[start:start + length - len(head)])

    def _write_failed(self, exc: OSError) -> None:
        code = exc.errno or 0
        self.stats.drop("tap.tx", _TX_ERRORS.get(code, DropReason.BAD_MESSAGE))
        self.stats.count(f"tap.tx_error.{errno.errorcode.get(code, 'unknown')}")
