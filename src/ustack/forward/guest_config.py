# SPDX-License-Identifier: MIT
"""Inside the guest namespace: bring ``lo`` up, configure the tap, point resolv.conf at
the gateway. Runs in the guest child, never while an asyncio loop runs (pyroute2's
sync API drives a loop of its own).

Order matters (rtnetlink(7)): the MTU is set and the link brought up before the
addresses, so that the IPv6 prefix route exists when the default route via the
IPv6 gateway is added. The IPv6 address skips duplicate address detection
(``IFA_F_NODAD``, include/uapi/linux/if_addr.h) so it is usable at once.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ustack.forward.guest_errors import LinkSetupError
from ustack.forward.guest_ns import bind_file

IFA_F_NODAD = 0x02
AF_INET, AF_INET6 = 2, 10
RESOLV_CONF = "/etc/resolv.conf"


@contextmanager
def _rtnl(what: str) -> Iterator[Any]:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipr = IPRoute()
    except OSError as exc:
        raise LinkSetupError(exc.errno or errno.EIO, f"{what}: rtnetlink: {exc}") from None
    try:
        yield ipr
    except NetlinkError as exc:
        code = exc.code or errno.EIO
        hint = ""
        if code == errno.EEXIST:
            hint = ": the namespace already has it; pass configure=False to keep its own set-up"
        raise LinkSetupError(code, f"{what}: {os.strerror(code)}{hint}") from None
    finally:
        ipr.close()


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LinkSetupError(errno.ENODEV, f"no interface {ifname!r} in the guest namespace")
    return int(found[0])


def loopback_up() -> None:
    with _rtnl("bringing lo up") as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")


def link_address(ifname: str) -> bytes:
    """The kernel side's MAC address of ``ifname``."""
    with _rtnl(f"looking up {ifname!r}") as ipr:
        mac = ipr.link("get", index=_index(ipr, ifname))[0].get("IFLA_ADDRESS")
    return bytes.fromhex(str(mac).replace(":", ""))


def configure_tap(ifname: str, mtu: int, *, guest4: str | None, prefix4: int, gateway4: str,
                  guest6: str | None, prefix6: int, gateway6: str) -> None:
    """MTU, up, the guest's addresses, default routes via the gateways.

    A family whose guest address is None (``-4``/``-6``) is left unconfigured; for
    IPv6 the tap's IPv6 is switched off altogether (no link-local address, no router
    solicitations), best effort, before the link comes up."""
    if guest6 is None:
        disable_ipv6(ifname)
    with _rtnl(f"configuring {ifname!r}") as ipr:
        index = _index(ipr, ifname)
        ipr.link("set", index=index, mtu=mtu)
        ipr.link("set", index=index, state="up")
        if guest4 is not None:
            ipr.addr("add", index=index, address=guest4, prefixlen=prefix4)
        if guest6 is not None:
            ipr.addr("add", index=index, address=guest6, prefixlen=prefix6, flags=IFA_F_NODAD)
        if guest4 is not None:
            ipr.route("add", family=AF_INET, dst="0.0.0.0", dst_len=0, gateway=gateway4,
                      oif=index)
        if guest6 is not None:
            ipr.route("add", family=AF_INET6, dst="::", dst_len=0, gateway=gateway6,
                      oif=index)


def disable_ipv6(ifname: str) -> bool:
    """net.ipv6.conf.IFNAME.disable_ipv6 = 1 in the current network namespace (ip-sysctl);
    False if that is not possible here (no IPv6, or /proc/sys read-only)."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as knob:
            knob.write("1\n")
    except OSError:
        return False
    return True


def resolv_conf_text(nameservers: list[str], domain: str = "") -> str:
    """resolv.conf(5) naming ustack's DNS forwarder (on the gateway addresses)."""
    lines = ["# written by ustack: DNS is forwarded by ustack on the gateway addresses"]
    lines += [f"nameserver {server}" for server in nameservers]
    if domain:
        lines.append(f"search {domain}")
    return "\n".join(lines) + "\n"


def install_resolv_conf(text: str, target: str = RESOLV_CONF) -> str | None:
    """Bind a file holding ``text`` over ``target`` (in a private mount namespace).

    The file is unlinked at once: the bind mount keeps it alive as long as the
    mount namespace lives, and nothing is left behind on disk. Returns a warning
    instead of failing when ``target`` does not exist (a bind mount needs a file
    to cover, and creating one in /etc would touch the host).
    """
    if not os.path.exists(target):
        return f"{target} does not exist here (a dangling link?): the guest keeps no resolver"
    fd, path = tempfile.mkstemp(prefix="ustack-resolv-", suffix=".conf")
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, 0o644)
        os.close(fd)
        fd = -1
        bind_file(path, target)
    except OSError as exc:
        raise LinkSetupError(exc.errno or errno.EIO, f"binding the guest's {target}: {exc}: "
                             "pass configure=False to keep the host's") from None
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)
    return None
