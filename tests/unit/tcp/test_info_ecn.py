# SPDX-License-Identifier: MIT
"""TCP_INFO's ECN bits, as Linux's tcp_get_info: TCPI_OPT_ECN (8) once RFC 3168 was
negotiated, TCPI_OPT_ECN_SEEN (16) once a segment arrived with ECT(0), ECT(1) or CE."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.tcp.helpers import connect, pair, pattern, pump
from ustack.transport.tcp.info import OPT_ECN, OPT_ECN_SEEN, OPT_SACK, OPT_TIMESTAMPS, OPT_WSCALE

BASE = OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE


def _options(sock: Any) -> int:
    options: int = sock.tcp_info().options
    return options


def test_tcpi_opt_ecn_and_ecn_seen() -> None:
    assert (OPT_ECN, OPT_ECN_SEEN) == (8, 16)  # Linux's values (include/uapi/linux/tcp.h)
    p = pair(tcp_a={"ecn": 1}, tcp_b={"ecn": 2})
    c = connect(p)
    # negotiated; nothing ECN-capable has arrived yet (SYNs and pure ACKs are not ECT)
    assert _options(c.client) == BASE | OPT_ECN
    assert _options(c.server) == BASE | OPT_ECN
    info = c.client.tcp_info()
    assert info.ecn and not info.ecn_seen
    data = pattern(20_000)
    assert pump(p, [(c.client, c.server, data)]) == [data]
    # the server received ECT(0) data; the client only pure ACKs
    assert _options(c.server) == BASE | OPT_ECN | OPT_ECN_SEEN
    assert c.server.tcp_info().ecn_seen
    assert _options(c.client) == BASE | OPT_ECN
    assert pump(p, [(c.server, c.client, data)]) == [data]
    assert _options(c.client) == BASE | OPT_ECN | OPT_ECN_SEEN


@pytest.mark.parametrize(("ecn_a", "ecn_b"), [(0, 2), (1, 0), (2, 2)])
def test_no_ecn_bits_without_negotiation(ecn_a: int, ecn_b: int) -> None:
    p = pair(tcp_a={"ecn": ecn_a}, tcp_b={"ecn": ecn_b})
    c = connect(p)
    data = pattern(5000)
    assert pump(p, [(c.client, c.server, data), (c.server, c.client, data)]) == [data, data]
    assert _options(c.client) == BASE and _options(c.server) == BASE
