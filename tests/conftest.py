# SPDX-License-Identifier: MIT
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from ustack.clock import VirtualClock
from ustack.testing.pair import StackPair, make_pair

# CI runs the property tests on hypothesis' fixed seed and without per-example deadlines
# (a loaded machine must not turn slowness into failures); HYPOTHESIS_PROFILE=explore
# draws fresh random examples, many more of them, to hunt for new counterexamples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def pair() -> StackPair:
    """Two stacks on a 1500-byte channel: a = 10.0.0.1/fd00::1, b = 10.0.0.2/fd00::2."""
    return make_pair()
