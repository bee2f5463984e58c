# SPDX-License-Identifier: MIT
"""A deterministic simulation bench: two ustack stacks on the virtual clock across a
bottleneck link, for watching congestion control and loss recovery do what their
RFCs say. See :mod:`ustack.sim.bench` and ``ustack sim``."""

from ustack.sim.bench import SimConfig, SimResult, Simulation, parse_rate, parse_time, run

__all__ = ["SimConfig", "SimResult", "Simulation", "parse_rate", "parse_time", "run"]
