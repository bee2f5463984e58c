# SPDX-License-Identifier: MIT
"""spawn_guest: a command in a namespace of its own whose only link is a tap served here.

Checked from inside the guest (its own ``ip``, ``cat``, ``ping``): the tap's MTU,
addresses and routes, /etc/resolv.conf naming the gateway, and pings to the
gateway that reach a ustack Stack on our side of the tap. As root, as an
unprivileged user (user namespace), attached to a namespace the test created,
and the exit status in every case.

Network rule: all traffic stays on the guest links (the gateway is the test's
own stack); the namespaces are the test's own and die with their processes and
tap fds; the named one is deleted on every exit path. The unprivileged run and
the "no tun" run happen in a private mount namespace (``unshare --mount``)
where /dev/net (and any directory on the way to Python that other users cannot
enter) is replaced by a tmpfs view: nothing on the host is changed.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ustack
from tests.interop.guest_body import INSPECT, PING, exit_statuses, run_guest
from ustack.forward.config import GuestNetwork
from ustack.forward.guest import spawn_guest
from ustack.forward.guest_errors import (
    CommandNotFoundError,
    NamespaceNotFoundError,
    UserNamespaceError,
)
from ustack.netns import Namespace, NamespaceError

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun")
                       or shutil.which("ip") is None or shutil.which("ping") is None,
                       reason="needs root, /dev/net/tun, ip and ping"),
]

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
NET = GuestNetwork(dns_upstream=[])


def resolv_leftovers() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "ustack-resolv-*")))


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Every test leaves no resolv.conf copies behind, and the host's is untouched."""
    before = resolv_leftovers()
    host_resolv = Path("/etc/resolv.conf").read_bytes() if os.path.exists(
        "/etc/resolv.conf") else None
    yield
    assert resolv_leftovers() == before
    if host_resolv is not None:
        assert Path("/etc/resolv.conf").read_bytes() == host_resolv


def assert_guest_view(result: dict[str, Any], *, mtu: int = 65520) -> None:
    """What the guest saw of its network, and what ustack saw of the guest."""
    report = result["report"]
    assert result["status"] == 0, result
    assert report["UID"] == "0"
    (link,) = report["LINK"]
    assert link["ifname"] == "tap0"
    assert link["mtu"] == mtu
    assert "UP" in link["flags"]
    (addr,) = report["ADDR"]
    addrs = {(a["local"], a["prefixlen"]) for a in addr["addr_info"]}
    assert ("10.0.2.100", 24) in addrs
    assert ("fd00:0:0:2::100", 64) in addrs
    defaults4 = [r for r in report["ROUTE4"] if r["dst"] == "default"]
    defaults6 = [r for r in report["ROUTE6"] if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in defaults4] == [("10.0.2.2", "tap0")]
    assert [(r["gateway"], r["dev"]) for r in defaults6] == [("fd00:0:0:2::2", "tap0")]
    resolv = report["RESOLV"].split(";")
    assert "nameserver 10.0.2.2" in resolv
    assert "nameserver fd00:0:0:2::2" in resolv
    # the guest's frames reached ustack's side of the tap, and the stack answered
    assert report["PING4"] == "ok"
    assert report["PING6"] == "ok"
    assert result["tap"]["tap.rx_frames"] >= 4
    assert result["stack"]["icmp4.echo_replied"] >= 2
    assert result["stack"]["icmp6.echo_replied"] >= 2


def assert_exit_statuses(results: dict[str, Any]) -> None:
    assert results["zero"] == 0
    assert results["three"] == 3
    assert results["sigterm"] == 128 + 15
    assert results["killed"] == 128 + 9
    kind, status, message = results["not_found"]
    assert (kind, status) == ("CommandNotFoundError", 127)
    assert "ustack-no-such-command: command not found" in message
    assert results["exec_failed"] == 127


def assert_gone(pid: int) -> None:
    assert not os.path.exists(f"/proc/{pid}"), f"guest process {pid} left behind"


# --- as root ----------------------------------------------------------------------------------

def test_root_guest_sees_its_network_and_reaches_ustack() -> None:
    result = run_guest(INSPECT + PING)
    assert_guest_view(result)
    assert_gone(result["pid"])


def test_root_guest_in_a_user_namespace() -> None:
    result = run_guest(INSPECT + PING, userns=True)
    assert_guest_view(result)


def test_mtu_and_no_offload() -> None:
    result = run_guest(INSPECT + PING, mtu=1500, offload=False)
    assert_guest_view(result, mtu=1500)


def test_root_exit_statuses() -> None:
    assert_exit_statuses(exit_statuses())


def test_unconfigured_guest_has_a_bare_tap() -> None:
    result = run_guest(INSPECT, configure=False, serve_tap=False)
    report = result["report"]
    assert result["status"] == 0
    (link,) = report["LINK"]
    assert "UP" not in link["flags"]
    assert report["ROUTE4"] == [] and report["ROUTE6"] == []
    assert "10.0.2.2" not in report["RESOLV"]  # the host's resolv.conf, not ours


def test_command_not_found_is_a_clear_error() -> None:
    with pytest.raises(CommandNotFoundError, match="command not found") as info:
        spawn_guest(["ustack-no-such-command"], NET)
    assert info.value.exit_status == 127


def test_kill_and_close_before_start() -> None:
    guest = spawn_guest(["sleep", "60"], NET)
    pid = guest.pid
    guest.close()  # never started: the child is killed and reaped, the tap closed
    assert guest.returncode is not None
    assert guest.tap.stats["tap.tx_frames"] == 0
    assert_gone(pid)


# --- attached to a namespace the test created -------------------------------------------------

@pytest.fixture
def named_ns() -> Iterator[Namespace]:
    name = f"ust-g-{os.getpid()}-{secrets.token_hex(3)}"
    resolv = Path("/etc/netns") / name
    ns = Namespace.create(name)
    try:
        resolv.mkdir(parents=True)
        (resolv / "resolv.conf").write_text("# no resolvers: this namespace stays offline\n")
        yield ns
    finally:
        ns.delete()
        shutil.rmtree(resolv, ignore_errors=True)
    assert not ns.exists()


def test_attach_to_a_named_namespace(named_ns: Namespace) -> None:
    result = run_guest(INSPECT + PING, netns=named_ns.name)
    assert_guest_view(result)
    # the guest is gone and its tap with it: the namespace is as it was, bar lo
    with pytest.raises(NamespaceError):
        named_ns.index("tap0")


def test_attach_by_path_unconfigured(named_ns: Namespace) -> None:
    net = GuestNetwork(dns_upstream=[])
    guest = spawn_guest(["sh", "-c", "ip -br link show dev ustg0 >/dev/null"], net,
                        netns=f"/run/netns/{named_ns.name}", configure=False,
                        tap_name="ustg0")
    try:
        # the tap is in the named namespace, down and without addresses (pyroute2 here,
        # before any asyncio loop runs in this thread)
        assert named_ns.index("ustg0") > 0
        assert [a for a in named_ns.addresses("ustg0") if not a.startswith("fe80")] == []
        guest.start()
        assert guest.wait_sync(30) == 0
    finally:
        guest.close()
    with pytest.raises(NamespaceError):
        named_ns.index("ustg0")


def test_attach_to_a_user_owned_namespace_by_path() -> None:
    """A namespace owned by a user namespace (``unshare -rn``): joined through its owner."""
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        for _ in range(100):  # unshare execs sleep once the namespaces exist
            if os.path.exists(path) and os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        script = INSPECT + 'echo "NETNS $(readlink /proc/self/ns/net)"\n' + PING
        result = run_guest(script, netns=path, userns=True)
        assert_guest_view(result)
        assert result["report"]["NETNS"] == os.readlink(path)
    finally:
        holder.kill()
        holder.wait()


def test_attach_to_a_missing_namespace() -> None:
    name = f"ust-missing-{secrets.token_hex(4)}"
    with pytest.raises(NamespaceNotFoundError, match="not found"):
        spawn_guest(["true"], NET, netns=name)
    with pytest.raises(NamespaceNotFoundError, match="not a network namespace"):
        spawn_guest(["true"], NET, netns="/proc/self/ns/mnt")


# --- unprivileged, and a machine without tun ---------------------------------------------------

def _hidden_dirs(paths: list[str]) -> dict[str, set[str]]:
    """Directories on the way to ``paths`` that others cannot enter -> the children needed."""
    hidden: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(os.path.abspath(path)).parts
        for i in range(1, len(parts)):
            directory = os.path.join(*parts[:i])
            if not os.stat(directory).st_mode & 0o001:
                hidden.setdefault(directory, set()).add(parts[i])
    return hidden


def isolated(argv: list[str], *, user: int | None, tun: str, timeout: float = 180,
             netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace (unshare --mount, private propagation).

    /dev/net is a tmpfs there, with a tun node anyone may open (``tun="open"``),
    one only root may open (``"private"``) or none (``"missing"``). With
    ``user``, directories on the way to Python and this repository that others
    cannot enter are shown through tmpfs views holding only what is needed, and
    ``argv`` runs as ``user`` without any capability (setpriv).
    The mounts vanish with the namespace. ``netns`` runs all of it in that network
    namespace (``ip netns exec``).
    """
    lines = ["set -e", "mount -t tmpfs -o mode=755 ustack-test /dev/net"]
    if tun in ("open", "private"):
        rdev = os.stat("/dev/net/tun").st_rdev
        mode = "666" if tun == "open" else "600"
        lines.append(f"mknod -m {mode} /dev/net/tun c {os.major(rdev)} {os.minor(rdev)}")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C",
           "PYTHONPATH": f"{REPO}:{os.path.dirname(os.path.dirname(ustack.__file__))}"}
    if user is not None:
        import pyroute2

        needed = [sys.executable, os.path.realpath(sys.executable), sys.prefix,
                  sys.base_prefix, os.path.dirname(pyroute2.__file__), str(REPO)]
        hidden = _hidden_dirs(needed)
        if any(a != b and a.startswith(b + "/") for a in hidden for b in hidden):
            pytest.skip(f"nested private directories on the way to python: {sorted(hidden)}")
        for index, (directory, children) in enumerate(sorted(hidden.items())):
            hold = f"/dev/net/hold{index}"
            q = shlex.quote
            lines += [f"mkdir {hold}", f"mount --bind {q(directory)} {hold}",
                      f"mount -t tmpfs -o mode=755 ustack-view {q(directory)}"]
            for child in sorted(children):
                target = q(os.path.join(directory, child))
                make = "mkdir" if os.path.isdir(os.path.join(directory, child)) else "touch"
                lines += [f"{make} {target}", f"mount --bind {hold}/{q(child)} {target}"]
            lines += [f"umount {hold}", f"rmdir {hold}"]
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                  "--inh-caps=-all", "--"]
    else:
        prefix = []
    command = [*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
    lines.append("exec " + shlex.join(command))
    enter = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*enter, "unshare", "--mount", "--propagation", "private", "--",
                           "sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, check=False)


@pytest.fixture
def unprivileged_userns() -> None:
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        pytest.skip("needs setpriv and unshare (util-linux)")
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                            "--clear-groups", "--", "unshare", "--user", "--map-root-user",
                            "--net", "true"], capture_output=True, check=False, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available to unprivileged users: "
                    f"{probe.stderr.decode().strip()}")


@pytest.mark.usefixtures("unprivileged_userns")
def test_unprivileged_guest() -> None:
    run = isolated([sys.executable, "-m", "tests.interop.guest_body"], user=NOBODY,
                   tun="open")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["uid"] == NOBODY  # the test body really ran without privileges
    assert_guest_view(result["guest"])
    assert_exit_statuses(result["statuses"])


def _spawn_error(code: str, *, user: int | None, tun: str) -> list[Any]:
    """Run ``code`` (which calls spawn_guest) isolated; the error's type, status, message."""
    script = ("import json\n"
              "from ustack.forward.config import GuestNetwork\n"
              "from ustack.forward.guest import spawn_guest\n"
              "from ustack.forward.guest_errors import GuestError\n"
              "try:\n"
              f"    {code}\n"
              "    print(json.dumps(None))\n"
              "except GuestError as exc:\n"
              "    print(json.dumps([type(exc).__name__, exc.exit_status, str(exc)]))\n")
    run = isolated([sys.executable, "-c", script], user=user, tun=tun)
    assert run.returncode == 0, run.stdout + run.stderr
    result: list[Any] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_missing_tun_is_a_clear_error() -> None:
    kind, status, message = _spawn_error(
        "spawn_guest(['true'], GuestNetwork(dns_upstream=[]))", user=None, tun="missing")
    assert (kind, status) == ("TunError", 125)
    assert message.startswith("/dev/net/tun is missing: load the tun module")
    assert "\n" not in message


@pytest.mark.usefixtures("unprivileged_userns")
def test_tun_not_accessible_is_a_clear_error() -> None:
    kind, _status, message = _spawn_error(
        "spawn_guest(['true'], GuestNetwork(dns_upstream=[]))", user=NOBODY, tun="private")
    assert kind == "TunError"
    assert message.startswith("cannot open /dev/net/tun (permission denied)")


def test_user_namespaces_not_permitted_is_a_clear_error() -> None:
    """user.max_user_namespaces=0, set inside a user namespace of the test's own (the limit
    is per user namespace, so the host's stays as it is)."""
    code = ("spawn_guest(['true'], GuestNetwork(dns_upstream=[]), userns=True)")
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && exec " + shlex.join(
        [sys.executable, "-c",
         "import json\n"
         "from ustack.forward.config import GuestNetwork\n"
         "from ustack.forward.guest import spawn_guest\n"
         "from ustack.forward.guest_errors import GuestError\n"
         "try:\n"
         f"    {code}\n"
         "    print(json.dumps(None))\n"
         "except GuestError as exc:\n"
         "    print(json.dumps([type(exc).__name__, exc.exit_status, str(exc)]))\n"]))
    run = subprocess.run(["unshare", "--user", "--map-root-user", "--", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    kind, status, message = json.loads(run.stdout.splitlines()[-1])
    assert (kind, status) == (UserNamespaceError.__name__, 125)
    assert "user.max_user_namespaces" in message
