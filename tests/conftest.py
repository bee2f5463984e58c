# SPDX-License-Identifier: MIT
from __future__ import annotations

import pytest

from ustack.clock import VirtualClock
from ustack.testing.pair import StackPair, make_pair


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def pair() -> StackPair:
    """Two stacks on a 1500-byte channel: a = 10.0.0.1/fd00::1, b = 10.0.0.2/fd00::2."""
    return make_pair()
