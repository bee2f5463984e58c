# SPDX-License-Identifier: MIT
"""DNS messages (RFC 1035 section 4): the header and the question section.

Enough for a forwarder to validate, log and match queries and answers; resource
records are not decoded. Names follow RFC 1035 3.1 / 4.1.4: labels of at most 63
bytes, at most 255 bytes in all, and compression pointers that may only point
backwards (so a pointer loop cannot be written) and are followed at most
:data:`MAX_POINTERS` times.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ustack.wire.errors import DropReason, ParseError
from ustack.wire.types import Buffer

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
HEADER_LEN = HEADER.size  # 12
_QUESTION_TAIL = struct.Struct("!HH")  # qtype, qclass

# Flags (RFC 1035 4.1.1; AD and CD from RFC 4035 3.2).
QR = 0x8000
OPCODE_SHIFT = 11
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010
RCODE_MASK = 0x000F

OPCODE_QUERY = 0
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1

MAX_NAME = 255  # RFC 1035 3.1: octets of the wire form, length bytes included
MAX_LABEL = 63  # RFC 1035 2.3.4
MAX_POINTERS = 64  # more jumps than any honest name needs (at most 127 labels)
_POINTER = 0xC0


class Header(NamedTuple):
    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & RCODE_MASK

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)


class Question(NamedTuple):
    name: str  # dotted, no trailing dot; "" is the root; odd bytes escaped as \DDD
    qtype: int
    qclass: int

    def same_as(self, other: Question) -> bool:
        """RFC 1035 2.3.3 / RFC 4343: names compare without regard to ASCII case."""
        return (self.qtype == other.qtype and self.qclass == other.qclass
                and self.name.lower() == other.name.lower())


class Message(NamedTuple):
    header: Header
    questions: tuple[Question, ...]
    #: where the question section ends (answers, if any, start here)
    question_end: int


def _label_text(label: Buffer) -> str:
    """A label as text: letters, digits, '-' and '_' as they are, anything else as \\DDD."""
    out = []
    for byte in bytes(label):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_"):
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def parse_name(data: Buffer, offset: int, allow_compression: bool = True) -> tuple[str, int]:
    """Decode the name at ``offset``; returns it and the offset just past it in place.

    RFC 1035 4.1.4: a pointer (two top bits set) replaces the rest of the name by
    the name at an earlier offset. Each pointer must go strictly backwards, which
    rules out loops; jumps are also counted. ``allow_compression=False`` rejects
    pointers (RFC 8415 10: names in DHCPv6 options are not compressed).
    """
    labels: list[str] = []
    size = 1  # the root label's length byte
    end = -1  # where parsing resumes after the name in place
    jumps = 0
    limit = len(data)
    pos = offset
    while True:
        if pos >= limit:
            raise ParseError(DropReason.TRUNCATED, "dns name")
        length = data[pos]
        if length & _POINTER == _POINTER:
            if not allow_compression:
                raise ParseError(DropReason.BAD_OPTION, "compressed name")
            if pos + 2 > limit:
                raise ParseError(DropReason.TRUNCATED, "dns name pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            jumps += 1
            if target >= pos or jumps > MAX_POINTERS:  # forward or self pointer: a loop
                raise ParseError(DropReason.BAD_MESSAGE, "dns name pointer loop")
            if end < 0:
                end = pos + 2
            pos = target
            continue
        if length & _POINTER:  # 0x40 and 0x80: extended label types (RFC 6891 6.2)
            raise ParseError(DropReason.BAD_MESSAGE, f"dns label type {length >> 6}")
        if length == 0:
            if end < 0:
                end = pos + 1
            return ".".join(labels), end
        size += length + 1
        if size > MAX_NAME:
            raise ParseError(DropReason.BAD_MESSAGE, "dns name longer than 255")
        if pos + 1 + length > limit:
            raise ParseError(DropReason.TRUNCATED, "dns label")
        labels.append(_label_text(memoryview(data)[pos + 1:pos + 1 + length]))
        pos += 1 + length


def encode_name(name: str) -> bytes:
    """A dotted name in wire form, uncompressed (RFC 1035 3.1); raises ValueError."""
    name = name.rstrip(".")
    out = bytearray()
    for label in name.split(".") if name else ():
        raw = label.encode("ascii")
        if not 0 < len(raw) <= MAX_LABEL:
            raise ValueError(f"bad dns label {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError("dns name longer than 255 octets")
    return bytes(out)


def parse_header(data: Buffer) -> Header:
    if len(data) < HEADER_LEN:
        raise ParseError(DropReason.TRUNCATED, "dns header")
    return Header(*HEADER.unpack_from(data))


def parse(data: Buffer) -> Message:
    """The header and every question (RFC 1035 4.1.2); the rest is not looked at."""
    header = parse_header(data)
    questions = []
    offset = HEADER_LEN
    for _ in range(header.qdcount):  # each question takes 5 bytes or more: bounded by len
        name, offset = parse_name(data, offset)
        if offset + _QUESTION_TAIL.size > len(data):
            raise ParseError(DropReason.TRUNCATED, "dns question")
        qtype, qclass = _QUESTION_TAIL.unpack_from(data, offset)
        offset += _QUESTION_TAIL.size
        questions.append(Question(name, qtype, qclass))
    return Message(header, tuple(questions), offset)


def build_header(header: Header) -> bytes:
    return HEADER.pack(*header)


def build_question(question: Question) -> bytes:
    return encode_name(question.name) + _QUESTION_TAIL.pack(question.qtype, question.qclass)


def build_query(ident: int, question: Question, flags: int = RD) -> bytes:
    return build_header(Header(ident, flags, 1, 0, 0, 0)) + build_question(question)


def with_id(data: Buffer, ident: int) -> bytes:
    """The same message with another ID (a forwarder's remapping); ``data`` is parsed."""
    out = bytearray(data)
    struct.pack_into("!H", out, 0, ident)
    return bytes(out)


def error_response(query: Buffer, message: Message, rcode: int) -> bytes:
    """An answer with ``rcode`` to a parsed query: its ID, RD and question, QR and RA set,
    no records (RFC 1035 4.1.1; as resolvers answer SERVFAIL when they cannot recurse)."""
    flags = (QR | RA | (message.header.flags & (RD | CD | (0xF << OPCODE_SHIFT)))
             | (rcode & RCODE_MASK))
    head = Header(message.header.id, flags, len(message.questions), 0, 0, 0)
    return build_header(head) + bytes(query[HEADER_LEN:message.question_end])
