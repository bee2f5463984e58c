# SPDX-License-Identifier: MIT
"""The README's first command, ``ustack demo``, and the one-line errors of ``ustack run``."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.interop.hostrun import NEEDS_ROOT

pytestmark = [pytest.mark.interop, NEEDS_ROOT]
USTACK = [sys.executable, "-m", "ustack.cli.main"]


def test_demo_checks_both_directions() -> None:
    proc = subprocess.run([*USTACK, "demo", "--size", "8"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("sha256 ok") == 2, proc.stdout
    assert "both transfers intact" in proc.stdout
    # a well-behaved guest (the Linux kernel) sends nothing ustack must drop
    assert " 0 drops;" in proc.stdout, proc.stdout


def test_run_with_a_host_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([*USTACK, "run", "-t", str(port), "--", "true"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"ustack run: host TCP port {port} is in use: pick another "
                                   "with -t/-u HOSTPORT:GUESTPORT")


def test_run_reports_a_bad_port_spec_and_a_missing_command() -> None:
    bad = subprocess.run([*USTACK, "run", "-t", "99999", "--", "true"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "ports must be within 1-65535" in bad.stderr
    missing = subprocess.run([*USTACK, "run", "--", "no-such-command-xyz"], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 127
    assert "no-such-command-xyz" in missing.stdout + missing.stderr


def test_run_exits_with_the_commands_status() -> None:
    proc = subprocess.run([*USTACK, "run", "--", "sh", "-c", "exit 7"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 7
