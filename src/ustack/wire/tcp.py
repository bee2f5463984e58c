# SPDX-License-Identifier: MIT
"""TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018, RFC 7413, RFC 6994)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from ustack.wire import checksum
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.proto import IPProto
from ustack.wire.types import Buffer

HEADER = struct.Struct("!HHIIBBHHH")
MIN_HEADER_LEN = HEADER.size  # 20
MAX_OPTIONS_LEN = 40

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8
OPT_FASTOPEN = 34
OPT_EXPERIMENTAL = 254
FASTOPEN_MAGIC = 0xF989  # RFC 7413 section 4.1.1, via the RFC 6994 shared option

_TS = struct.Struct("!II")
_TS_FAST = b"\x01\x01\x08\x0a"  # NOP NOP TS(10): the layout every common stack sends
_U16 = struct.Struct("!H")
_TS_FAST_OPTION = struct.Struct("!4sII")  # _TS_FAST, TSval, TSecr


class TCPOptions(NamedTuple):
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None  # (TSval, TSecr)
    fastopen: bytes | None = None  # b"" is a cookie request
    fastopen_experimental: bool = False


NO_OPTIONS = TCPOptions()


class TCPHeader(NamedTuple):
    src_port: int
    dst_port: int
    seq: int
    ack: int
    header_length: int
    flags: int
    window: int
    checksum: int
    urgent: int


def parse(data: Buffer, src: bytes, dst: bytes, verify_checksum: bool = True) -> TCPHeader:
    """``data`` is the whole TCP segment (header, options and payload)."""
    if len(data) < MIN_HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "tcp header")
    sport, dport, seq, ack, off, flags, window, csum, urg = HEADER.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < MIN_HEADER_LEN or hlen > len(data):
        raise ParseError(DropReason.BAD_HEADER_LENGTH, f"tcp data offset {off >> 4}")
    if verify_checksum:
        initial = checksum.pseudo_header_sum(src, dst, IPProto.TCP, len(data))
        if not checksum.verify(data, initial):
            raise ParseError(DropReason.BAD_CHECKSUM, "tcp")
    return TCPHeader(sport, dport, seq, ack, hlen, flags, window, csum, urg)


def parse_options(data: Buffer, start: int, end: int) -> TCPOptions:
    """RFC 9293 3.1: skip unknown options by length; a length below 2 or past the end is bad.

    A known option with a wrong length is ignored, as Linux and FreeBSD do.
    """
    if end - start == 12 and data[start:start + 4] == _TS_FAST:
        return TCPOptions(None, None, False, (), _TS.unpack_from(data, start + 4))
    mss = wscale = None
    sack_ok = False
    blocks: tuple[tuple[int, int], ...] = ()
    ts = None
    fastopen = None
    experimental = False
    offset = start
    while offset < end:
        kind = data[offset]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            offset += 1
            continue
        if offset + 2 > end:
            raise ParseError(DropReason.BAD_OPTION, f"tcp option {kind} without length")
        length = data[offset + 1]
        if length < 2 or offset + length > end:
            raise ParseError(DropReason.BAD_OPTION, f"tcp option {kind} length {length}")
        if kind == OPT_MSS and length == 4:
            mss = _U16.unpack_from(data, offset + 2)[0]
        elif kind == OPT_WSCALE and length == 3:
            wscale = data[offset + 2]
        elif kind == OPT_SACK_PERMITTED and length == 2:
            sack_ok = True
        elif kind == OPT_SACK and length >= 10 and (length - 2) % 8 == 0:
            edges = struct.unpack_from(f"!{(length - 2) // 4}I", data, offset + 2)
            blocks = tuple(zip(edges[::2], edges[1::2], strict=True))
        elif kind == OPT_TIMESTAMP and length == 10:
            ts = _TS.unpack_from(data, offset + 2)
        elif kind == OPT_FASTOPEN:
            fastopen = bytes(data[offset + 2:offset + length])
        elif (kind == OPT_EXPERIMENTAL and length >= 4
              and _U16.unpack_from(data, offset + 2)[0] == FASTOPEN_MAGIC):
            fastopen = bytes(data[offset + 4:offset + length])
            experimental = True
        offset += length
    return TCPOptions(mss, wscale, sack_ok, blocks, ts, fastopen, experimental)


def timestamp_option(tsval: int, tsecr: int) -> bytes:
    """NOP NOP TS (RFC 7323 appendix A layout): the options of a common data segment."""
    return _TS_FAST_OPTION.pack(_TS_FAST, tsval, tsecr)


def build_options(opts: TCPOptions, syn_order: str = "linux") -> bytes:
    """Encode options padded with NOPs to a multiple of four bytes.

    ``syn_order`` picks the layout: ``"linux"`` (mss, sackOK+TS, nop, wscale) or
    ``"freebsd"`` (FreeBSD's own: mss, nop, wscale, sackOK, TS, padded with EOL).
    """
    if opts.timestamp is not None and opts.mss is None and not opts.sack_blocks \
            and opts.fastopen is None and opts.wscale is None and not opts.sack_permitted:
        return timestamp_option(*opts.timestamp)  # the common data segment: NOP NOP TS
    if syn_order == "freebsd":
        return _freebsd_layout(opts)
    out = bytearray()
    if opts.mss is not None:
        out += bytes((OPT_MSS, 4)) + _U16.pack(opts.mss)
    if opts.sack_permitted and opts.timestamp is not None:
        out += bytes((OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10)) + _TS.pack(*opts.timestamp)
    elif opts.timestamp is not None:
        out += _TS_FAST + _TS.pack(*opts.timestamp)
    elif opts.sack_permitted:
        out += bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2))
    if opts.wscale is not None:
        out += bytes((OPT_NOP, OPT_WSCALE, 3, opts.wscale))
    if opts.fastopen is not None:
        if opts.fastopen_experimental:
            out += bytes((OPT_EXPERIMENTAL, 4 + len(opts.fastopen))) + _U16.pack(
                FASTOPEN_MAGIC) + opts.fastopen
        else:
            out += bytes((OPT_FASTOPEN, 2 + len(opts.fastopen))) + opts.fastopen
    if opts.sack_blocks:
        out += bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(opts.sack_blocks)))
        for left, right in opts.sack_blocks:
            out += _TS.pack(left, right)
    pad = -len(out) % 4
    out += bytes((OPT_NOP,)) * pad
    if len(out) > MAX_OPTIONS_LEN:
        raise ValueError(f"tcp options take {len(out)} bytes, more than 40")
    return bytes(out)


def _freebsd_layout(opts: TCPOptions) -> bytes:
    """FreeBSD's tcp_addoptions(): options in the order of their TOF_ flags, each
    aligned with NOPs as it likes (MSS on 4, window scale on 4n+1, SACK-permitted on
    2, timestamps and SACK blocks on 4n+2), the list ended by EOL and zero padding."""
    out = bytearray()

    def align(ok: Callable[[int], bool]) -> None:
        while not ok(len(out)):
            out.append(OPT_NOP)

    if opts.mss is not None:
        align(lambda n: n % 4 == 0)
        out += bytes((OPT_MSS, 4)) + _U16.pack(opts.mss)
    if opts.wscale is not None:
        align(lambda n: n % 2 == 1)
        out += bytes((OPT_WSCALE, 3, opts.wscale))
    if opts.sack_permitted:
        align(lambda n: n % 2 == 0)
        out += bytes((OPT_SACK_PERMITTED, 2))
    if opts.timestamp is not None:
        align(lambda n: n % 4 == 2)
        out += bytes((OPT_TIMESTAMP, 10)) + _TS.pack(*opts.timestamp)
    if opts.sack_blocks:
        align(lambda n: n % 4 == 2)
        out += bytes((OPT_SACK, 2 + 8 * len(opts.sack_blocks)))
        for left, right in opts.sack_blocks:
            out += _TS.pack(left, right)
    if opts.fastopen is not None:
        if opts.fastopen_experimental:
            out += bytes((OPT_EXPERIMENTAL, 4 + len(opts.fastopen))) + _U16.pack(
                FASTOPEN_MAGIC) + opts.fastopen
        else:
            out += bytes((OPT_FASTOPEN, 2 + len(opts.fastopen))) + opts.fastopen
    if len(out) % 4:
        out += bytes(-len(out) % 4)  # EOL, then zero padding (RFC 9293 3.1)
    if len(out) > MAX_OPTIONS_LEN:
        raise ValueError(f"tcp options take {len(out)} bytes, more than 40")
    return bytes(out)


def build_header_into(buf: Buffer, offset: int, *, src_port: int, dst_port: int, seq: int,
                      ack: int, flags: int, window: int, options: bytes = b"",
                      urgent: int = 0) -> int:
    """Write header and options at ``offset``; the checksum field is left zero. Returns length."""
    hlen = MIN_HEADER_LEN + len(options)
    HEADER.pack_into(buf, offset, src_port, dst_port, seq, ack,
                     (hlen // 4) << 4, flags, window, 0, urgent)
    if options:
        buf[offset + MIN_HEADER_LEN:offset + hlen] = options  # type: ignore[index]
    return hlen


def fill_checksum(segment: bytearray | memoryview, src: bytes, dst: bytes,
                  payload: Buffer = b"") -> None:
    """Checksum a header in ``segment`` followed (logically) by ``payload``.

    ``segment`` holds the header; ``payload`` may be a separate buffer so the data
    is never copied just to be summed. The header length must be even (it is).
    """
    total = len(segment) + len(payload)
    initial = checksum.pseudo_header_sum(src, dst, IPProto.TCP, total)
    partial = checksum.ones_sum(segment, initial)
    struct.pack_into("!H", segment, 16, checksum.checksum(payload, partial))
