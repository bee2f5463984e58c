# SPDX-License-Identifier: MIT
"""Small services and clients that run on a ustack stack (echo, discard, HTTP)."""
