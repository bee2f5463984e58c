# SPDX-License-Identifier: MIT
"""Does a packet the stack sent match the script's, and if not, what differs first.

Strict mode checks what packetdrill checks: every header field (flags, sequence
and acknowledgment numbers, window unless the script omits it, urgent pointer,
ECN bits if given), the options byte for byte (so their order and padding; only
the TS val is free, anchored by the first one), the payload, and the time within
the tolerance. Relaxed mode checks RFC behaviour only: the flags except PSH,
sequence and acknowledgment numbers, the length, and the set of options with
their values (not their order, padding, or TS val); not the window, not the time.
Both modes require valid IP and TCP checksums.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ustack.testing.packetdrill.model import TcpPacket, TimeKind
from ustack.testing.packetdrill.packets import (
    ECN_BITS,
    Outbound,
    encode_options,
    flag_bits,
    flag_letters,
    format_options,
    parse_options,
)
from ustack.wire import tcp as wire


class Mode(enum.Enum):
    STRICT = "strict"
    RELAXED = "relaxed"


@dataclass(frozen=True)
class Mismatch:
    what: str  # the field, or "timing"
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, got {self.got}"


def describe(out: Outbound) -> str:
    """An outbound packet (in script space) as a script line would write it."""
    flags = flag_letters(out.flags)
    ack = f" ack {out.ack}" if out.flags & wire.ACK else ""
    n = len(out.payload)
    return (f"> {flags or '-'} {out.seq}:{(out.seq + n) & 0xFFFFFFFF}({n}){ack} "
            f"win {out.window} {format_options(out.options)}").rstrip()


def check_packet(script: TcpPacket, out: Outbound, mode: Mode, ts_tick_usecs: int = 0,
                 tolerance: int = 0) -> Mismatch | None:
    strict = mode is Mode.STRICT
    if not out.checksums_ok:
        return Mismatch("checksum", "valid IP and TCP checksums and lengths", "invalid")
    want = flag_bits(script.flags, script.line)
    got = out.flags & 0xFF
    if not strict:
        want &= ~wire.PSH
        got &= ~wire.PSH
    if want != got:
        return Mismatch("flags", repr(script.flags or "-"), repr(flag_letters(out.flags) or "-"))
    if not script.ignore_seq and script.seq != out.seq:
        return Mismatch("sequence number", str(script.seq), str(out.seq))
    if script.length != len(out.payload):
        return Mismatch("payload length", str(script.length), str(len(out.payload)))
    if (strict or script.has(".")) and script.ack != out.ack:
        return Mismatch("ack number", str(script.ack), str(out.ack))
    if strict and script.window is not None and script.window != out.window:
        return Mismatch("window", str(script.window), str(out.window))
    if strict and script.urgent != out.urgent:
        return Mismatch("urgent pointer", str(script.urgent), str(out.urgent))
    if strict and out.reserved:
        return Mismatch("reserved bits", "0", hex(out.reserved))
    if script.ecn is not None:
        ecn = _ecn_mismatch(script.ecn, out.ecn)
        if ecn is not None:
            return ecn
    if script.options is not None:
        expected = encode_options(script.options, script.line)
        bad = _options_strict(expected, out.options, ts_tick_usecs, tolerance) if strict \
            else _options_relaxed(expected, out.options)
        if bad:
            return Mismatch("options", format_options(expected) or "none",
                            format_options(out.options) or "none")
    if any(out.payload):
        return Mismatch("payload", "zero bytes", "other data")
    return None


def _ecn_mismatch(spec: str, bits: int) -> Mismatch | None:
    names = {v: k for k, v in ECN_BITS.items()}
    if spec == "ect01":
        return None if bits in (1, 2) else Mismatch("IP ECN field", "ect0 or ect1", names[bits])
    if ECN_BITS[spec] != bits:
        return Mismatch("IP ECN field", spec, names[bits])
    return None


def _ts_val_at(raw: bytes) -> int | None:
    """Offset of the TS val field in ``raw`` (None without a timestamp option)."""
    i = 0
    while i < len(raw):
        if raw[i] in (0, 1):
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            return None
        if raw[i] == 8 and raw[i + 1] == 10:
            return i + 2
        i += raw[i + 1]
    return None


def _options_strict(expected: bytes, got: bytes, tick: int, tolerance: int) -> bool:
    """True when the options differ (packetdrill's verify_outbound_live_tcp_options)."""
    if expected == got:
        return False
    at_e, at_g = _ts_val_at(expected), _ts_val_at(got)
    if at_e is None or at_g is None or len(expected) != len(got):
        return True
    (val_e,) = struct.unpack_from("!I", expected, at_e)
    (val_g,) = struct.unpack_from("!I", got, at_g)
    delta = (val_g - val_e + (1 << 31)) % (1 << 32) - (1 << 31)
    if tick and abs(delta) * tick > tolerance:
        return True
    patched = bytearray(got)
    struct.pack_into("!I", patched, at_g, val_e)
    return bytes(patched) != expected


def _option_set(raw: bytes) -> list[tuple[int, bytes]]:
    items = []
    for kind, body in parse_options(raw):
        if kind in (0, 1):
            continue
        if kind == 8 and len(body) == 8:
            body = body[4:]  # only the TS ecr is RFC behaviour; the TS val is the stack's
        items.append((kind, body))
    return sorted(items)


def _options_relaxed(expected: bytes, got: bytes) -> bool:
    return _option_set(expected) != _option_set(got)


def check_time(kind: TimeKind, start: int, end: int | None, actual: int,
               tolerance: int) -> Mismatch | None:
    """packetdrill's verify_time: within the tolerance of the time, or of the range."""
    if kind is TimeKind.ANY:
        return None
    hi = end if end is not None and kind in (TimeKind.ABSOLUTE_RANGE,
                                              TimeKind.RELATIVE_RANGE) else start
    if start - tolerance <= actual <= hi + tolerance:
        return None
    expected = f"{start / 1e6:.6f}" + (f"~{hi / 1e6:.6f}" if hi != start else "")
    return Mismatch("timing", f"at {expected} s", f"at {actual / 1e6:.6f} s")
