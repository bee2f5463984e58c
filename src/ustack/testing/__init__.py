# SPDX-License-Identifier: MIT
"""Helpers for tests and simulations: stacks wired together on a virtual clock."""
