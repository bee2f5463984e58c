# SPDX-License-Identifier: MIT
"""The body of the spawn_guest interop checks, run in the test process (as root) or, for
the unprivileged case, as ``python -m tests.interop.guest_body`` under setpriv.

The guest runs a shell script that reports, from inside its namespace, the tap's
link, addresses and routes, its /etc/resolv.conf, and pings the gateway. The
gateway is a ustack Stack on ustack's side of the tap, so the pings (and every
other frame) never leave the guest link: the network rule holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from typing import Any

from ustack.clock import RealClock
from ustack.forward.config import GuestNetwork
from ustack.forward.guest import Guest, spawn_guest
from ustack.forward.guest_errors import GuestError
from ustack.stack import Stack

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

INSPECT = r"""
echo "UID $(id -u)"
echo "LINK $(ip -j link show dev tap0)"
echo "ADDR $(ip -j addr show dev tap0)"
echo "ROUTE4 $(ip -j -4 route show)"
echo "ROUTE6 $(ip -j -6 route show)"
echo "RESOLV $(tr '\n' ';' < /etc/resolv.conf)"
"""

PING = r"""
ping -n -c 2 -i 0.2 -W 2 10.0.2.2 >/dev/null 2>&1 && echo "PING4 ok" || echo "PING4 fail"
ping -n -6 -c 2 -i 0.2 -W 2 fd00:0:0:2::2 >/dev/null 2>&1 && echo "PING6 ok" || echo "PING6 fail"
"""


def parse_report(text: str) -> dict[str, Any]:
    """``KEY value`` lines; JSON values decoded."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in ("LINK", "ADDR", "ROUTE4", "ROUTE6"):
            out[key] = json.loads(value) if value.strip() else []
        elif key:
            out[key] = value
    return out


async def serve(guest: Guest, net: GuestNetwork, *, timeout: float = 60) -> dict[str, Any]:
    """Answer on the gateway addresses until the command ends; its status and counters."""
    loop = asyncio.get_running_loop()
    stack = Stack(RealClock(loop))
    stack.create_nic(guest.tap, "guest")
    stack.add_address("guest", f"{net.gateway4}/{net.prefix4}")
    stack.add_address("guest", f"{net.gateway6}/{net.prefix6}", dad=False)
    guest.tap.start(loop)
    guest.start()
    try:
        status = await asyncio.wait_for(guest.wait(), timeout)
    finally:
        guest.tap.stop()
        stack.close()
    return {"status": status, "tap": guest.tap.stats.snapshot(),
            "stack": stack.stats.snapshot()}


def run_guest(script: str, *, serve_tap: bool = True, **kwargs: Any) -> dict[str, Any]:
    """Run ``sh -c script`` as a guest; its parsed stdout, exit status and counters."""
    net = GuestNetwork(dns_upstream=[])
    with tempfile.TemporaryFile() as out:
        guest = spawn_guest(["sh", "-c", script], net, stdout=out,
                            env={"PATH": PATH, "LC_ALL": "C"}, **kwargs)
        try:
            if serve_tap:
                result = asyncio.run(serve(guest, net))
            else:
                guest.start()
                result = {"status": guest.wait_sync(60)}
            result["pid"] = guest.pid
        finally:
            guest.close()
        out.seek(0)
        result["report"] = parse_report(out.read().decode())
    return result


def exit_statuses(**kwargs: Any) -> dict[str, Any]:
    """The exit status of commands that exit 0, exit 3, kill themselves, or do not exist."""
    net = GuestNetwork(dns_upstream=[])
    env = {"PATH": PATH}
    results: dict[str, Any] = {}
    for name, argv in [("zero", ["true"]), ("three", ["sh", "-c", "exit 3"]),
                       ("sigterm", ["sh", "-c", "kill -TERM $$"])]:
        with spawn_guest(argv, net, env=env, **kwargs) as guest:
            guest.start()
            results[name] = guest.wait_sync(30)
    with spawn_guest(["sleep", "60"], net, env=env, **kwargs) as guest:
        guest.start()
        guest.kill(signal.SIGKILL)
        results["killed"] = guest.wait_sync(30)
    try:
        spawn_guest(["ustack-no-such-command"], net, env=env, **kwargs)
    except GuestError as exc:
        results["not_found"] = [type(exc).__name__, exc.exit_status, str(exc)]
    # found, but exec(2) fails (ENOENT for a missing interpreter): the shell's 127
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "bad-interpreter")
        with open(script, "w") as f:
            f.write("#!/ustack/no/such/interpreter\n")
        os.chmod(script, 0o755)
        os.chmod(tmp, 0o755)
        with open(os.devnull, "w") as devnull, \
                spawn_guest([script], net, env=env, stderr=devnull, **kwargs) as guest:
            guest.start()
            results["exec_failed"] = guest.wait_sync(30)
    return results


def main() -> int:
    """For the unprivileged test: everything, as JSON on the last line of stdout."""
    result = {"uid": os.getuid(),
              "guest": run_guest(INSPECT + PING),
              "statuses": exit_statuses()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
