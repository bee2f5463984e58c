# SPDX-License-Identifier: MIT
"""The ``ustack`` command line."""
