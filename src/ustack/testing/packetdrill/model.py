# SPDX-License-Identifier: MIT
"""What a parsed packetdrill script is: header options and a list of timed events.

Times are integer microseconds, as packetdrill keeps them. Sequence numbers,
acknowledgment numbers and TS values are the script's own (packetdrill maps them
to live values when the script runs, see :mod:`mapping`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TimeKind(enum.Enum):
    ABSOLUTE = "absolute"  # 0.100
    RELATIVE = "relative"  # +0.1
    ANY = "any"  # *
    ABSOLUTE_RANGE = "absolute range"  # 0.1~0.2
    RELATIVE_RANGE = "relative range"  # +0.1~+0.2


@dataclass(frozen=True)
class TimeSpec:
    kind: TimeKind
    start: int = 0  # usecs
    end: int | None = None  # usecs, for ranges

    @property
    def relative(self) -> bool:
        return self.kind in (TimeKind.RELATIVE, TimeKind.RELATIVE_RANGE, TimeKind.ANY)


# --- syscall argument expressions -----------------------------------------------------------


class Ellipsis_:
    """``...``: any value (an argument the runner fills in, a result not checked)."""

    def __repr__(self) -> str:
        return "..."


ELLIPSIS = Ellipsis_()


@dataclass(frozen=True)
class Word:
    """A symbol: SOL_SOCKET, O_NONBLOCK, ECONNRESET, AF_INET ..."""

    name: str


@dataclass(frozen=True)
class ListExpr:
    """``[a, b]``: an array (a pointer to an int, a list of values)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class StructExpr:
    """``{a, b}`` or ``{onoff=1, linger=0}``: fields, named or not, in order."""

    fields: tuple[tuple[str | None, Expr], ...]

    def get(self, name: str) -> Expr | None:
        return next((v for k, v in self.fields if k == name), None)


@dataclass(frozen=True)
class BinaryExpr:
    op: str  # "|"
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class CallExpr:
    """``htons(8080)``, ``inet_addr("192.0.2.1")``."""

    name: str
    args: tuple[Expr, ...]


Expr = int | str | Ellipsis_ | Word | ListExpr | StructExpr | BinaryExpr | CallExpr


# --- TCP options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TcpOption:
    """One option as written: ``mss 1460``, ``nop``, ``sack 1:2 3:4``, ``TS val 1 ecr 0``.

    ``values`` holds the numbers (mss, shift, TS val and ecr, SACK edges) or, for
    fast open and md5, the raw bytes.
    """

    kind: str  # "mss", "wscale", "sackOK", "sack", "TS", "nop", "eol", "FO", "FOEXP", "md5"
    values: tuple[int, ...] = ()
    data: bytes = b""

    def __str__(self) -> str:
        if self.kind == "TS":
            return f"TS val {self.values[0]} ecr {self.values[1]}"
        if self.kind == "sack":
            pairs = zip(self.values[::2], self.values[1::2], strict=True)
            return "sack " + " ".join(f"{a}:{b}" for a, b in pairs)
        if self.kind in ("FO", "FOEXP", "md5"):
            return f"{self.kind} {self.data.hex()}".rstrip()
        return " ".join([self.kind, *map(str, self.values)])


# --- events -------------------------------------------------------------------------------------


@dataclass
class Event:
    line: int
    time: TimeSpec


@dataclass
class TcpPacket(Event):
    inbound: bool
    flags: str  # packetdrill letters, in the script's order: "S.", "F.", "SEW", "R", ""
    seq: int
    length: int
    ack: int = 0  # the field, whether or not the ACK flag is set
    window: int | None = None  # None: not checked (outbound only)
    options: tuple[TcpOption, ...] | None = ()  # None: <...>, not checked
    ecn: str | None = None  # "noecn", "ect0", "ect1", "ce", "ect01"; None: not checked
    urgent: int = 0
    ports: tuple[int, int] | None = None  # explicit "src>dst" ports
    ignore_seq: bool = False  # "...(len)": the sequence number is not checked

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def describe(self) -> str:
        opts = "<...>" if self.options is None else (
            "<" + ",".join(map(str, self.options)) + ">" if self.options else "")
        ack = f" ack {self.ack}" if self.has(".") else ""
        win = f" win {self.window}" if self.window is not None else ""
        seq = f"...({self.length})" if self.ignore_seq else \
            f"{self.seq}:{self.seq + self.length}({self.length})"
        return (f"{'<' if self.inbound else '>'} {self.flags or '-'} {seq}{ack}{win} "
                f"{opts}").rstrip()


@dataclass
class IcmpPacket(Event):
    inbound: bool
    icmp_type: str  # "unreachable", "time_exceeded", "packet_too_big", ...
    code: str | None = None  # "port_unreachable", "frag_needed", ...
    mtu: int | None = None
    echo_id: int = 0
    protocol: str = "tcp"  # the echoed packet's protocol: "tcp", "udp", "raw"
    echoed_seq: int = 0
    echoed_length: int = 0


@dataclass
class Syscall(Event):
    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end: int | None = None  # usecs: a blocking call ("...end"); None: must not block


@dataclass
class Command(Event):
    """A backtick shell command: ```sysctl -w net.inet.tcp.sack.enable=1```."""

    text: str


@dataclass
class Code(Event):
    """A ``%{ python }%`` block, run with the socket's ``tcpi_*`` fields as variables."""

    text: str


@dataclass
class Script:
    path: str
    options: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
