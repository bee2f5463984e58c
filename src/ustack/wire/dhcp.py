# SPDX-License-Identifier: MIT
"""BOOTP/DHCPv4 messages (RFC 2131 section 2, RFC 951) and their options (RFC 2132).

The fixed header, the magic cookie (RFC 2131 3) and the options that configure a
host are decoded into a record; any other option is kept as raw bytes. Options
split into several instances are joined (RFC 3396). Option overload (RFC 2132
9.3) is ignored: ``sname`` and ``file`` are never read as options.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
HEADER_LEN = HEADER.size  # 236
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 3: 99.130.83.99
OPTIONS_OFFSET = HEADER_LEN + len(MAGIC_COOKIE)  # 240
MIN_LENGTH = 300  # RFC 1542 2.1: relays may drop shorter BOOTP messages; we pad to it

SERVER_PORT = 67
CLIENT_PORT = 68

BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000  # RFC 2131 2, figure 2

# Message types (RFC 2132 9.6).
DISCOVER = 1
OFFER = 2
REQUEST = 3
DECLINE = 4
ACK = 5
NAK = 6
RELEASE = 7
INFORM = 8

# Option codes (RFC 2132).
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN_NAME = 15
OPT_MTU = 26
OPT_BROADCAST_ADDRESS = 28
OPT_REQUESTED_ADDRESS = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_REQUEST_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_MESSAGE_SIZE = 57
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_CLIENT_ID = 61
OPT_END = 255

MIN_MTU = 68  # RFC 2132 5.1
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Options(NamedTuple):
    message_type: int | None = None
    server_id: bytes | None = None
    requested_address: bytes | None = None
    lease_time: int | None = None
    renewal_time: int | None = None  # T1
    rebinding_time: int | None = None  # T2
    subnet_mask: bytes | None = None
    routers: tuple[bytes, ...] = ()
    dns_servers: tuple[bytes, ...] = ()
    domain_name: bytes | None = None
    hostname: bytes | None = None
    mtu: int | None = None
    parameter_request_list: tuple[int, ...] = ()
    client_id: bytes | None = None
    max_message_size: int | None = None
    message: bytes | None = None
    #: every other option, as (code, value) in the order first seen
    other: tuple[tuple[int, bytes], ...] = ()


class Message(NamedTuple):
    op: int
    xid: int
    chaddr: bytes  # the first ``hlen`` bytes of the field
    options: Options
    htype: int = HTYPE_ETHERNET
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = bytes(4)
    yiaddr: bytes = bytes(4)
    siaddr: bytes = bytes(4)
    giaddr: bytes = bytes(4)
    sname: bytes = b""  # up to the first NUL
    file: bytes = b""

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)


# --- parsing --------------------------------------------------------------------------------

def _c_string(field: bytes) -> bytes:
    end = field.find(0)
    return field if end < 0 else field[:end]


def _collect(data: Buffer, offset: int) -> dict[int, bytes]:
    """RFC 2132 2: code, length, value; pad and end have no length. RFC 3396: the values
    of repeated codes are concatenated. A missing end option is tolerated."""
    values: dict[int, bytes] = {}
    end = len(data)
    while offset < end:
        code = data[offset]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            offset += 1
            continue
        if offset + 2 > end:
            raise ParseError(DropReason.BAD_OPTION, f"dhcp option {code} header")
        length = data[offset + 1]
        start = offset + 2
        if start + length > end:
            raise ParseError(DropReason.BAD_OPTION, f"dhcp option {code} length {length}")
        values[code] = values.get(code, b"") + bytes(data[start:start + length])
        offset = start + length
    return values


def _addresses(code: int, value: bytes, single: bool = False) -> tuple[bytes, ...]:
    if not value or len(value) % 4 or (single and len(value) != 4):
        raise ParseError(DropReason.BAD_OPTION, f"dhcp option {code}: {len(value)} bytes")
    return tuple(value[i:i + 4] for i in range(0, len(value), 4))


def _number(code: int, value: bytes, unpacker: struct.Struct) -> int:
    if len(value) != unpacker.size:
        raise ParseError(DropReason.BAD_OPTION, f"dhcp option {code}: {len(value)} bytes")
    result: int = unpacker.unpack(value)[0]
    return result


def _nonempty(code: int, value: bytes) -> bytes:
    if not value:  # RFC 2132 3.14, 3.17, 9.14: these hold at least one byte
        raise ParseError(DropReason.BAD_OPTION, f"dhcp option {code} empty")
    return value


def parse_options(data: Buffer, offset: int = OPTIONS_OFFSET) -> Options:
    raw = _collect(data, offset)
    mtu = None
    if OPT_MTU in raw:
        mtu = _number(OPT_MTU, raw[OPT_MTU], _U16)
        if mtu < MIN_MTU:
            raise ParseError(DropReason.BAD_OPTION, f"dhcp mtu {mtu}")
    max_size = None
    if OPT_MAX_MESSAGE_SIZE in raw:
        max_size = _number(OPT_MAX_MESSAGE_SIZE, raw[OPT_MAX_MESSAGE_SIZE], _U16)

    def one(code: int) -> bytes | None:
        return _addresses(code, raw[code], single=True)[0] if code in raw else None

    def u32(code: int) -> int | None:
        return _number(code, raw[code], _U32) if code in raw else None

    def text(code: int) -> bytes | None:
        return _nonempty(code, raw[code]) if code in raw else None

    known = {OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_REQUESTED_ADDRESS, OPT_LEASE_TIME,
             OPT_RENEWAL_TIME, OPT_REBINDING_TIME, OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS,
             OPT_DOMAIN_NAME, OPT_HOSTNAME, OPT_MTU, OPT_PARAMETER_REQUEST_LIST,
             OPT_CLIENT_ID, OPT_MAX_MESSAGE_SIZE, OPT_MESSAGE}
    client_id = raw.get(OPT_CLIENT_ID)
    if client_id is not None and len(client_id) < 2:  # RFC 2132 9.14: minimum length 2
        raise ParseError(DropReason.BAD_OPTION, "dhcp client identifier")
    return Options(
        message_type=(_number(OPT_MESSAGE_TYPE, raw[OPT_MESSAGE_TYPE], _U8)
                      if OPT_MESSAGE_TYPE in raw else None),
        server_id=one(OPT_SERVER_ID),
        requested_address=one(OPT_REQUESTED_ADDRESS),
        lease_time=u32(OPT_LEASE_TIME),
        renewal_time=u32(OPT_RENEWAL_TIME),
        rebinding_time=u32(OPT_REBINDING_TIME),
        subnet_mask=one(OPT_SUBNET_MASK),
        routers=_addresses(OPT_ROUTER, raw[OPT_ROUTER]) if OPT_ROUTER in raw else (),
        dns_servers=_addresses(OPT_DNS, raw[OPT_DNS]) if OPT_DNS in raw else (),
        domain_name=text(OPT_DOMAIN_NAME),
        hostname=text(OPT_HOSTNAME),
        mtu=mtu,
        parameter_request_list=tuple(raw.get(OPT_PARAMETER_REQUEST_LIST, b"")),
        client_id=client_id,
        max_message_size=max_size,
        message=raw.get(OPT_MESSAGE),
        other=tuple((code, value) for code, value in raw.items() if code not in known),
    )


def parse(data: Buffer) -> Message:
    """A BOOTP message with the DHCP magic cookie (RFC 2131 2, 3)."""
    if len(data) < OPTIONS_OFFSET:
        raise ParseError(DropReason.TRUNCATED, "dhcp message")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = HEADER.unpack_from(data)
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise ParseError(DropReason.BAD_MESSAGE, f"bootp op {op}")
    if hlen > len(chaddr):
        raise ParseError(DropReason.BAD_MESSAGE, f"bootp hlen {hlen}")
    if bytes(data[HEADER_LEN:OPTIONS_OFFSET]) != MAGIC_COOKIE:
        raise ParseError(DropReason.BAD_MESSAGE, "no dhcp magic cookie")
    return Message(op, xid, chaddr[:hlen], parse_options(data), htype, hops, secs, flags,
                   ciaddr, yiaddr, siaddr, giaddr, _c_string(sname), _c_string(file))


# --- building -------------------------------------------------------------------------------

def _emit(out: bytearray, code: int, value: bytes) -> None:
    """One option; a value over 255 bytes is split into several (RFC 3396 section 7)."""
    if not value:
        out += bytes((code, 0))
        return
    for start in range(0, len(value), 255):
        chunk = value[start:start + 255]
        out += bytes((code, len(chunk))) + chunk


def encode_options(options: Options, order: Sequence[int] = ()) -> bytes:
    """The options (message type first, then the codes in ``order``, e.g. a client's
    parameter request list (RFC 2132 9.8), then the rest), the end option included."""
    values: dict[int, bytes] = {}
    o = options
    if o.message_type is not None:
        values[OPT_MESSAGE_TYPE] = _U8.pack(o.message_type)
    addresses = ((OPT_SERVER_ID, o.server_id), (OPT_REQUESTED_ADDRESS, o.requested_address),
                 (OPT_SUBNET_MASK, o.subnet_mask))
    for code, addr in addresses:
        if addr is not None:
            values[code] = addr
    for code, number in ((OPT_LEASE_TIME, o.lease_time), (OPT_RENEWAL_TIME, o.renewal_time),
                         (OPT_REBINDING_TIME, o.rebinding_time)):
        if number is not None:
            values[code] = _U32.pack(number)
    if o.routers:
        values[OPT_ROUTER] = b"".join(o.routers)
    if o.dns_servers:
        values[OPT_DNS] = b"".join(o.dns_servers)
    for code, text in ((OPT_DOMAIN_NAME, o.domain_name), (OPT_HOSTNAME, o.hostname),
                       (OPT_CLIENT_ID, o.client_id), (OPT_MESSAGE, o.message)):
        if text is not None:
            values[code] = text
    if o.mtu is not None:
        values[OPT_MTU] = _U16.pack(o.mtu)
    if o.max_message_size is not None:
        values[OPT_MAX_MESSAGE_SIZE] = _U16.pack(o.max_message_size)
    if o.parameter_request_list:
        values[OPT_PARAMETER_REQUEST_LIST] = bytes(o.parameter_request_list)
    for code, value in o.other:
        values.setdefault(code, value)
    out = bytearray()
    first = [OPT_MESSAGE_TYPE, *order]
    for code in [*first, *(c for c in values if c not in first)]:
        if code in values:
            _emit(out, code, values.pop(code))
    out.append(OPT_END)
    return bytes(out)


def build(message: Message, order: Sequence[int] = ()) -> bytes:
    """The message, padded to :data:`MIN_LENGTH`; option codes in ``other`` are 1 to 254."""
    m = message
    if len(m.chaddr) > 16:
        raise ValueError("chaddr longer than 16 bytes")
    out = bytearray(HEADER.pack(m.op, m.htype, len(m.chaddr), m.hops, m.xid, m.secs, m.flags,
                                m.ciaddr, m.yiaddr, m.siaddr, m.giaddr, m.chaddr, m.sname,
                                m.file))
    out += MAGIC_COOKIE
    out += encode_options(m.options, order)
    if len(out) < MIN_LENGTH:
        out += bytes(MIN_LENGTH - len(out))
    return bytes(out)
