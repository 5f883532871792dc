"""Test "hosts" on this machine: network namespaces on one bridge, each with its own address.

    with HostNetwork() as network:
        broker_address = network.bridge_address        # the host side: broker, store, Gemini server
        host = network.add_host("h1")                   # a namespace at network.subnet .11
        process = host.popen([sys.executable, ...])     # runs inside it
        network.remove_host(host)                       # kill -9 everything in it, then delete it

Needs root and iproute2 (``ip netns``). Every address is in a /24 of 10.199.0.0/16 that no route of
this machine uses yet; nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    probe = f"dsprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def popen(self, command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], **kwargs)
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True)
        return [int(pid) for pid in done.stdout.split()]


class HostNetwork:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = _free_subnet()
        self.bridge = f"dsbr{self.tag}"
        self.bridge_address = str(self.subnet.network_address + 1)
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> "HostNetwork":
        ip("link", "add", self.bridge, "type", "bridge")
        try:
            ip("addr", "add", f"{self.bridge_address}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        number = len(self.hosts) + 1
        host = Host(name, f"ds{self.tag}-{name}", str(self.subnet.network_address + 10 + number))
        outside = f"dsv{self.tag}{number}"
        ip("netns", "add", host.namespace)
        self.hosts[name] = host
        ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        ip("link", "set", outside, "master", self.bridge, "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def remove_host(self, name: str) -> None:
        """The host dies: every process in its namespace gets SIGKILL, then its network is gone."""
        host = self.hosts.pop(name)
        for pid in host.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in host.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        deadline = time.monotonic() + 10
        while host.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)

    def close(self) -> None:
        for name in list(self.hosts):
            self.remove_host(name)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


def _free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used = [ipaddress.ip_network(word, strict=False) for line in routes.splitlines()
            for word in line.split()[:1] if word[0].isdigit()]
    for third in range(200, 255):
        candidate = ipaddress.ip_network(f"10.199.{third}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free /24 in 10.199.200-254.0")
