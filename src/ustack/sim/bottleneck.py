# SPDX-License-Identifier: MIT
"""The bottleneck link model: a rate, a propagation delay, a drop-tail queue limit in
bytes and a loss pattern, on the forward (data) path; the return (ACK) path only
delays. Built on the impairment link (link/impairment.py), which already
serializes frames at a rate behind a byte-limited queue; this adds the byte
accounting a utilisation figure needs and names the loss patterns."""

from __future__ import annotations

from ustack.buffer import PacketBuffer
from ustack.clock import Clock
from ustack.contracts import LinkEndpoint
from ustack.link.impairment import GilbertElliott, Impairment, ImpairmentEndpoint

PATTERNS = ("random", "bursts", "tail")


def loss_settings(pattern: str, loss: float, burst: float = 3.0,
                  drop: set[int] | None = None) -> dict[str, object]:
    """Impairment fields for a loss pattern with mean loss rate ``loss``:

    - ``random``: each frame lost independently (Bernoulli);
    - ``bursts``: a Gilbert-Elliott chain whose bad state loses every frame, with
      bursts of ``burst`` frames on average and the same mean loss rate;
    - ``tail``: no random loss at all; frames are lost only when the drop-tail queue
      overflows (and at the explicit frame numbers of ``drop``).
    """
    if pattern not in PATTERNS:
        raise ValueError(f"loss pattern {pattern!r}: one of {', '.join(PATTERNS)}")
    fields: dict[str, object] = {"drop": set(drop or ())}
    if pattern == "random":
        fields["loss"] = loss
    elif pattern == "bursts" and loss > 0:
        r = 1.0 / max(burst, 1.0)
        p = loss * r / max(1.0 - loss, 1e-9)  # stationary bad fraction p/(p+r) = loss
        fields["burst_loss"] = GilbertElliott(p=min(p, 1.0), r=r)
    return fields


class Bottleneck(ImpairmentEndpoint):
    """The sender's link: what it sends is rate-limited, queued, delayed and lost."""

    def __init__(self, inner: LinkEndpoint, clock: Clock, rate: float, delay: float,
                 queue_limit: int | None, pattern: str = "tail", loss: float = 0.0,
                 burst: float = 3.0, drop: set[int] | None = None,
                 reorder: float = 0.0, reorder_delay: float = 0.0, seed: int = 1) -> None:
        tx = Impairment(rate=rate, delay=delay, queue_limit=queue_limit, reorder=reorder,
                        reorder_delay=reorder_delay or 0.01,
                        **loss_settings(pattern, loss, burst, drop))  # type: ignore[arg-type]
        super().__init__(inner, clock, tx=tx, seed=seed)
        self.rate = rate
        self.wire_bytes = 0  # bytes that left the bottleneck (link headers included)
        self.wire_frames = 0

    def _send_now(self, pkts: list[PacketBuffer]) -> None:
        header = self.inner.max_header_length
        self.wire_bytes += sum(len(p) for p in pkts) + header * len(pkts)
        self.wire_frames += len(pkts)
        super()._send_now(pkts)

    @property
    def queue_bytes(self) -> int:
        return self.tx_backlog

    @property
    def queue_delay(self) -> float:
        """Seconds a frame arriving now waits for the ones ahead of it."""
        return self.tx_backlog * 8 / self.rate if self.rate else 0.0


class ReturnPath(ImpairmentEndpoint):
    """The receiver's link: the ACKs' propagation delay, nothing else."""

    def __init__(self, inner: LinkEndpoint, clock: Clock, delay: float, seed: int = 2) -> None:
        super().__init__(inner, clock, tx=Impairment(delay=delay), seed=seed)
