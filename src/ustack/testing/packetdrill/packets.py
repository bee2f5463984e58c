# SPDX-License-Identifier: MIT
"""Bytes on the wire: the script's TCP options encoded as written, inbound TCP and
ICMP packets built from live values, and the stack's outbound TCP packets decoded."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ustack.testing.packetdrill.lexer import ScriptError
from ustack.testing.packetdrill.model import TcpOption
from ustack.wire import checksum, ipv4, ipv6
from ustack.wire import tcp as wire
from ustack.wire.proto import EtherType, IPProto

#: packetdrill's flag letters and the header bits they stand for ('C' is not supported)
FLAG_BITS = {"F": wire.FIN, "S": wire.SYN, "R": wire.RST, "P": wire.PSH, ".": wire.ACK,
             "E": wire.ECE, "W": wire.CWR}
ECN_BITS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
_OPT = {"nop": 1, "eol": 0, "mss": 2, "wscale": 3, "sackOK": 4, "sack": 5, "TS": 8,
        "md5": 19, "FO": 34, "FOEXP": 254}


def flag_bits(letters: str, line: int) -> int:
    bits = 0
    for letter in letters:
        if letter not in FLAG_BITS:
            raise ScriptError(line, f"TCP flag {letter!r} is not supported")
        bits |= FLAG_BITS[letter]
    return bits


def flag_letters(bits: int) -> str:
    """The stack's flags in packetdrill's notation (FSRPEW, then the ACK dot)."""
    text = "".join(c for c, b in FLAG_BITS.items() if c != "." and bits & b)
    return text + ("." if bits & wire.ACK else "")


def encode_option(opt: TcpOption) -> bytes:
    kind = _OPT[opt.kind]
    if opt.kind in ("nop", "eol"):
        return bytes((kind,))
    if opt.kind == "mss":
        return struct.pack("!BBH", kind, 4, opt.values[0])
    if opt.kind == "wscale":
        return bytes((kind, 3, opt.values[0]))
    if opt.kind == "sackOK":
        return bytes((kind, 2))
    if opt.kind == "TS":
        return struct.pack("!BBII", kind, 10, *opt.values)
    if opt.kind == "sack":
        return bytes((kind, 2 + 4 * len(opt.values))) + struct.pack(
            f"!{len(opt.values)}I", *(v & 0xFFFFFFFF for v in opt.values))
    if opt.kind == "FOEXP":
        return bytes((kind, 4 + len(opt.data))) + struct.pack("!H", wire.FASTOPEN_MAGIC) + \
            opt.data
    return bytes((kind, 2 + len(opt.data))) + opt.data


def encode_options(options: tuple[TcpOption, ...], line: int) -> bytes:
    """The options byte for byte as the script lists them (packetdrill pads nothing)."""
    raw = b"".join(encode_option(o) for o in options)
    if len(raw) % 4:
        raise ScriptError(line, "TCP options are not padded correctly to ensure the TCP "
                          f"header is a multiple of 4 bytes: {len(raw) % 4} excess bytes")
    if len(raw) > wire.MAX_OPTIONS_LEN:
        raise ScriptError(line, "TCP header too large")
    return raw


def tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
                flags: int, window: int, options: bytes, payload: bytes,
                urgent: int = 0) -> bytes:
    header = bytearray(wire.MIN_HEADER_LEN + len(options))
    wire.build_header_into(header, 0, src_port=sport, dst_port=dport, seq=seq & 0xFFFFFFFF,
                           ack=ack & 0xFFFFFFFF, flags=flags, window=window, options=options,
                           urgent=urgent)
    wire.fill_checksum(header, src, dst, payload)
    return bytes(header) + payload


def ip_packet(src: bytes, dst: bytes, proto: int, l4: bytes, ecn: int = 0) -> bytes:
    if len(src) == 4:
        return ipv4.build(total_length=20 + len(l4), protocol=proto, src=src, dst=dst,
                          tos=ecn) + l4
    return ipv6.build(payload_length=len(l4), next_header=proto, src=src, dst=dst,
                      traffic_class=ecn) + l4


def ethertype_of(addr: bytes) -> int:
    return EtherType.IPV4 if len(addr) == 4 else EtherType.IPV6


# --- outbound ------------------------------------------------------------------------------------


@dataclass
class Outbound:
    """One TCP segment the stack sent, decoded from its frame (live values)."""

    time: int  # usecs since the script started
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    urgent: int
    options: bytes
    payload: bytes
    ecn: int
    reserved: int  # the header's reserved bits
    checksums_ok: bool  # the IPv4 header and TCP checksums, and the lengths


def decode(time: int, frame: bytes) -> Outbound | None:
    """The TCP segment in an Ethernet frame; None for anything else (ARP, ND, ...)."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    ip = frame[14:]
    if ethertype == EtherType.IPV4 and len(ip) >= 20:
        ihl = (ip[0] & 0xF) * 4
        (total,) = struct.unpack_from("!H", ip, 2)
        if ip[9] != IPProto.TCP:
            return None
        src, dst, ecn = ip[12:16], ip[16:20], ip[1] & 3
        ip_ok = checksum.verify(ip[:ihl]) and total <= len(ip)
        seg = ip[ihl:total]
    elif ethertype == EtherType.IPV6 and len(ip) >= 40:
        plen, nh = struct.unpack_from("!HB", ip, 4)
        if nh != IPProto.TCP:
            return None
        src, dst, ecn = ip[8:24], ip[24:40], (ip[1] >> 4) & 3
        ip_ok = 40 + plen <= len(ip)
        seg = ip[40:40 + plen]
    else:
        return None
    if len(seg) < wire.MIN_HEADER_LEN:
        return None
    sport, dport, seq, ack, off, flags, window, _csum, urgent = wire.HEADER.unpack_from(seg)
    hlen = (off >> 4) * 4
    ok = ip_ok and hlen <= len(seg) and checksum.verify(
        seg, checksum.pseudo_header_sum(src, dst, IPProto.TCP, len(seg)))
    return Outbound(time, bytes(src), bytes(dst), sport, dport, seq, ack, flags, window,
                    urgent, bytes(seg[20:hlen]), bytes(seg[hlen:]), ecn, off & 0xF, ok)


def parse_options(raw: bytes) -> list[tuple[int, bytes]]:
    """(kind, body) of each option in ``raw``, NOP and EOL included (body b"")."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            continue
        length = raw[i + 1] if i + 1 < len(raw) else 0
        if length < 2 or i + length > len(raw):
            out.append((kind, raw[i + 2:]))
            break
        out.append((kind, raw[i + 2:i + length]))
        i += length
    return out


def format_options(raw: bytes) -> str:
    """Options in script notation: ``<mss 1460,nop,wscale 6,sackOK,TS val 1 ecr 0>``."""
    parts: list[str] = []
    for kind, body in parse_options(raw):
        if kind == 0:
            parts.append("eol")
        elif kind == 1:
            parts.append("nop")
        elif kind == 2 and len(body) == 2:
            parts.append(f"mss {struct.unpack('!H', body)[0]}")
        elif kind == 3 and len(body) == 1:
            parts.append(f"wscale {body[0]}")
        elif kind == 4:
            parts.append("sackOK")
        elif kind == 5 and len(body) % 8 == 0:
            edges = struct.unpack(f"!{len(body) // 4}I", body)
            parts.append("sack " + " ".join(f"{a}:{b}" for a, b in zip(edges[::2], edges[1::2],
                                                                       strict=True)))
        elif kind == 8 and len(body) == 8:
            parts.append("TS val {} ecr {}".format(*struct.unpack("!II", body)))
        elif kind == 34:
            parts.append(f"FO {body.hex()}".rstrip())
        else:
            parts.append(f"option{kind} {body.hex()}".rstrip())
    return "<" + ",".join(parts) + ">" if parts else ""
