# SPDX-License-Identifier: MIT
"""DHCPv6 client/server messages (RFC 8415 section 8) and the options a stateful
address server needs (RFC 8415 section 21), with DNS options from RFC 3646.

Relay messages (RELAY-FORW, RELAY-REPL; section 9) have another layout and are
rejected by :func:`parse`. Options not decoded here are kept as raw bytes.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire import dns
from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

CLIENT_PORT = 546  # RFC 8415 7.2
SERVER_PORT = 547
ALL_DHCP_RELAY_AGENTS_AND_SERVERS = bytes.fromhex("ff020000000000000000000000010002")

HEADER = struct.Struct("!I")  # msg-type (8 bits) and transaction-id (24 bits)
HEADER_LEN = HEADER.size  # 4
_OPTION = struct.Struct("!HH")  # option-code, option-len
_IA_NA = struct.Struct("!III")  # IAID, T1, T2
_IAADDR = struct.Struct("!16sII")  # address, preferred-lifetime, valid-lifetime
_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")

# Message types (RFC 8415 7.3).
SOLICIT = 1
ADVERTISE = 2
REQUEST = 3
CONFIRM = 4
RENEW = 5
REBIND = 6
REPLY = 7
RELEASE = 8
DECLINE = 9
RECONFIGURE = 10
INFORMATION_REQUEST = 11
RELAY_FORW = 12
RELAY_REPL = 13

# Option codes (RFC 8415 21; RFC 3646 3 and 4).
OPT_CLIENTID = 1
OPT_SERVERID = 2
OPT_IA_NA = 3
OPT_IAADDR = 5
OPT_ORO = 6
OPT_PREFERENCE = 7
OPT_ELAPSED_TIME = 8
OPT_STATUS_CODE = 13
OPT_RAPID_COMMIT = 14
OPT_DNS_SERVERS = 23
OPT_DOMAIN_LIST = 24

# Status codes (RFC 8415 21.13).
SUCCESS = 0
UNSPEC_FAIL = 1
NO_ADDRS_AVAIL = 2
NO_BINDING = 3
NOT_ON_LINK = 4
USE_MULTICAST = 5

# DUID types (RFC 8415 11).
DUID_LLT = 1
DUID_EN = 2
DUID_LL = 3
DUID_UUID = 4
HW_ETHERNET = 1  # IANA hardware type (RFC 826)
DUID_MAX = 130  # 11.1: the type code and at most 128 octets
DUID_EPOCH = 946684800  # 11.2: DUID-LLT times count from 2000-01-01 00:00 UTC
INFINITY = 0xFFFFFFFF


class StatusCode(NamedTuple):
    code: int
    message: str = ""


class IAAddress(NamedTuple):
    address: bytes
    preferred_lifetime: int
    valid_lifetime: int
    status: StatusCode | None = None


class IANA(NamedTuple):
    iaid: int
    t1: int = 0
    t2: int = 0
    addresses: tuple[IAAddress, ...] = ()
    status: StatusCode | None = None


class Options(NamedTuple):
    client_id: bytes | None = None
    server_id: bytes | None = None
    ia_na: tuple[IANA, ...] = ()
    oro: tuple[int, ...] = ()
    preference: int | None = None
    elapsed_time: int | None = None  # hundredths of a second
    rapid_commit: bool = False
    status: StatusCode | None = None
    dns_servers: tuple[bytes, ...] = ()
    domain_list: tuple[str, ...] = ()
    #: every other option, as (code, value) in the order seen
    other: tuple[tuple[int, bytes], ...] = ()


class Message(NamedTuple):
    msg_type: int
    transaction_id: int
    options: Options


class DUID(NamedTuple):
    type: int
    hw_type: int | None = None
    time: int | None = None  # DUID-LLT only
    link_addr: bytes | None = None


# --- DUIDs (section 11) ---------------------------------------------------------------------

def duid_ll(mac: bytes, hw_type: int = HW_ETHERNET) -> bytes:
    """11.4: type 3, hardware type, link-layer address."""
    return struct.pack("!HH", DUID_LL, hw_type) + mac


def duid_llt(mac: bytes, time: int, hw_type: int = HW_ETHERNET) -> bytes:
    """11.2: type 1, hardware type, seconds since 2000 (mod 2^32), link-layer address."""
    return struct.pack("!HHI", DUID_LLT, hw_type, time & 0xFFFFFFFF) + mac


def parse_duid(data: Buffer) -> DUID:
    if not 3 <= len(data) <= DUID_MAX:
        raise ParseError(DropReason.BAD_OPTION, f"duid of {len(data)} bytes")
    kind = _U16.unpack_from(data)[0]
    if kind == DUID_LLT:
        if len(data) < 8:
            raise ParseError(DropReason.BAD_OPTION, "duid-llt")
        _kind, hw_type, time = struct.unpack_from("!HHI", data)
        return DUID(kind, hw_type, time, bytes(data[8:]))
    if kind == DUID_LL:
        if len(data) < 4:
            raise ParseError(DropReason.BAD_OPTION, "duid-ll")
        return DUID(kind, _U16.unpack_from(data, 2)[0], None, bytes(data[4:]))
    return DUID(kind)


# --- parsing --------------------------------------------------------------------------------

def _walk(data: Buffer, start: int, end: int) -> list[tuple[int, memoryview]]:
    """RFC 8415 21.1: code, length, value; each value must fit in what encloses it."""
    view = memoryview(data)
    found = []
    offset = start
    while offset < end:
        if offset + _OPTION.size > end:
            raise ParseError(DropReason.BAD_OPTION, "dhcpv6 option header")
        code, length = _OPTION.unpack_from(data, offset)
        offset += _OPTION.size
        if offset + length > end:
            raise ParseError(DropReason.BAD_OPTION, f"dhcpv6 option {code} length {length}")
        found.append((code, view[offset:offset + length]))
        offset += length
    return found


def _fixed(code: int, value: memoryview, unpacker: struct.Struct) -> int:
    if len(value) != unpacker.size:
        raise ParseError(DropReason.BAD_OPTION, f"dhcpv6 option {code}: {len(value)} bytes")
    result: int = unpacker.unpack(value)[0]
    return result


def _status(value: memoryview) -> StatusCode:
    """21.13: a 16-bit code and a UTF-8 message (not NUL-terminated)."""
    if len(value) < 2:
        raise ParseError(DropReason.BAD_OPTION, "dhcpv6 status code")
    return StatusCode(_U16.unpack_from(value)[0], bytes(value[2:]).decode("utf-8", "replace"))


def _duid(value: memoryview) -> bytes:
    parse_duid(value)
    return bytes(value)


def _iaaddr(value: memoryview) -> IAAddress:
    """21.6: address, preferred and valid lifetimes, then IAaddr-options."""
    if len(value) < _IAADDR.size:
        raise ParseError(DropReason.BAD_OPTION, "dhcpv6 iaaddr")
    address, preferred, valid = _IAADDR.unpack_from(value)
    status = None
    for code, inner in _walk(value, _IAADDR.size, len(value)):
        if code == OPT_STATUS_CODE and status is None:
            status = _status(inner)
    return IAAddress(address, preferred, valid, status)


def _ia_na(value: memoryview) -> IANA:
    """21.4: IAID, T1, T2, then IA_NA-options (addresses and a status code)."""
    if len(value) < _IA_NA.size:
        raise ParseError(DropReason.BAD_OPTION, "dhcpv6 ia_na")
    iaid, t1, t2 = _IA_NA.unpack_from(value)
    addresses = []
    status = None
    for code, inner in _walk(value, _IA_NA.size, len(value)):
        if code == OPT_IAADDR:
            addresses.append(_iaaddr(inner))
        elif code == OPT_STATUS_CODE and status is None:
            status = _status(inner)
    return IANA(iaid, t1, t2, tuple(addresses), status)


def _domain_list(value: memoryview) -> tuple[str, ...]:
    """RFC 3646 4 / RFC 8415 10: names in uncompressed RFC 1035 form, back to back."""
    names = []
    offset = 0
    while offset < len(value):
        name, offset = dns.parse_name(value, offset, allow_compression=False)
        names.append(name)
    return tuple(names)


def parse_options(data: Buffer, offset: int = HEADER_LEN) -> Options:
    """The options of a client/server message; a repeated singleton option keeps its
    first value."""
    opts = Options()
    ia_na: list[IANA] = []
    other: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    for code, value in _walk(data, offset, len(data)):
        if code == OPT_IA_NA:
            ia_na.append(_ia_na(value))
            continue
        if code in seen:
            continue
        seen.add(code)
        if code == OPT_CLIENTID:
            opts = opts._replace(client_id=_duid(value))
        elif code == OPT_SERVERID:
            opts = opts._replace(server_id=_duid(value))
        elif code == OPT_ORO:
            if len(value) % 2:
                raise ParseError(DropReason.BAD_OPTION, "dhcpv6 oro of odd length")
            opts = opts._replace(oro=tuple(struct.unpack(f"!{len(value) // 2}H", value)))
        elif code == OPT_PREFERENCE:
            opts = opts._replace(preference=_fixed(code, value, _U8))
        elif code == OPT_ELAPSED_TIME:
            opts = opts._replace(elapsed_time=_fixed(code, value, _U16))
        elif code == OPT_RAPID_COMMIT:
            if len(value):
                raise ParseError(DropReason.BAD_OPTION, "dhcpv6 rapid commit not empty")
            opts = opts._replace(rapid_commit=True)
        elif code == OPT_STATUS_CODE:
            opts = opts._replace(status=_status(value))
        elif code == OPT_DNS_SERVERS:
            if len(value) % 16:  # RFC 3646 3: a multiple of 16
                raise ParseError(DropReason.BAD_OPTION, "dhcpv6 dns servers length")
            opts = opts._replace(dns_servers=tuple(bytes(value[i:i + 16])
                                                   for i in range(0, len(value), 16)))
        elif code == OPT_DOMAIN_LIST:
            opts = opts._replace(domain_list=_domain_list(value))
        else:
            seen.discard(code)
            other.append((code, bytes(value)))
    return opts._replace(ia_na=tuple(ia_na), other=tuple(other))


def parse(data: Buffer) -> Message:
    """A client/server message (RFC 8415 8)."""
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "dhcpv6 message")
    word = HEADER.unpack_from(data)[0]
    msg_type = word >> 24
    if msg_type in (RELAY_FORW, RELAY_REPL) or msg_type == 0:
        raise ParseError(DropReason.BAD_MESSAGE, f"dhcpv6 message type {msg_type}")
    return Message(msg_type, word & 0xFFFFFF, parse_options(data))


# --- building -------------------------------------------------------------------------------

def _option(code: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"dhcpv6 option {code} too long")
    return _OPTION.pack(code, len(value)) + value


def _status_option(status: StatusCode) -> bytes:
    return _option(OPT_STATUS_CODE, _U16.pack(status.code) + status.message.encode("utf-8"))


def encode_ia_na(ia: IANA) -> bytes:
    body = bytearray(_IA_NA.pack(ia.iaid, ia.t1, ia.t2))
    for addr in ia.addresses:
        inner = _IAADDR.pack(addr.address, addr.preferred_lifetime, addr.valid_lifetime)
        if addr.status is not None:
            inner += _status_option(addr.status)
        body += _option(OPT_IAADDR, inner)
    if ia.status is not None:
        body += _status_option(ia.status)
    return _option(OPT_IA_NA, bytes(body))


def encode_options(options: Options) -> bytes:
    o = options
    out = bytearray()
    if o.client_id is not None:
        out += _option(OPT_CLIENTID, o.client_id)
    if o.server_id is not None:
        out += _option(OPT_SERVERID, o.server_id)
    for ia in o.ia_na:
        out += encode_ia_na(ia)
    if o.status is not None:
        out += _status_option(o.status)
    if o.preference is not None:
        out += _option(OPT_PREFERENCE, _U8.pack(o.preference))
    if o.rapid_commit:
        out += _option(OPT_RAPID_COMMIT, b"")
    if o.elapsed_time is not None:
        out += _option(OPT_ELAPSED_TIME, _U16.pack(o.elapsed_time))
    if o.oro:
        out += _option(OPT_ORO, struct.pack(f"!{len(o.oro)}H", *o.oro))
    if o.dns_servers:
        out += _option(OPT_DNS_SERVERS, b"".join(o.dns_servers))
    if o.domain_list:
        out += _option(OPT_DOMAIN_LIST, b"".join(dns.encode_name(n) for n in o.domain_list))
    for code, value in o.other:
        out += _option(code, value)
    return bytes(out)


def build(message: Message) -> bytes:
    return HEADER.pack((message.msg_type << 24) | (message.transaction_id & 0xFFFFFF)) + \
        encode_options(message.options)
