# SPDX-License-Identifier: MIT
"""Errors the command line reports as one line."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""
