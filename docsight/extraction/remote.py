"""Pictures on the web: listed as ``remote_picture`` by default, fetched only when asked for.

With ``DOCSIGHT_REMOTE_PICTURES=true`` a picture is fetched when its host is on the allowlist
(``DOCSIGHT_REMOTE_PICTURE_HOSTS``), within a size and a time cap, and only from public addresses:
the host is resolved first, every address it resolves to is checked (loopback, private, link-local,
reserved, multicast and unspecified are refused, also when embedded in an IPv6 address), and the
connection goes to the checked address (no second lookup a DNS rebinding could change). Redirects
are followed a few times, each hop checked the same way. Environment proxies are not used.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

from .models import RemotePicturePolicy

MAX_REDIRECTS = 3
SCHEMES = {"http": 80, "https": 443}


class RemoteRefused(Exception):
    """A remote picture is not fetched: the message says why (for the picture's entry)."""


class RemoteNotAllowed(RemoteRefused):
    """Fetching is off, or the host is not on the allowlist: the picture is listed as remote, not failed."""


def host_allowed(host: str, allowlist: tuple[str, ...] | list[str]) -> bool:
    """``host`` is on the allowlist: an exact name, or under an entry that starts with a dot.

    ``".wikimedia.org"`` allows ``upload.wikimedia.org`` and ``wikimedia.org``; ``"*"`` allows any host
    (public addresses only, still).
    """
    host = host.strip().lower().rstrip(".")
    if not host:
        return False
    for entry in allowlist:
        entry = entry.strip().lower().rstrip(".")
        if entry == "*":
            return True
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def address_refusal(address: str) -> str | None:
    """Why connecting to this IP address is refused, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour):
            if embedded is not None:
                candidates.append(embedded)
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for candidate in candidates:
        for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
            if getattr(candidate, f"is_{kind}"):
                return f"{address} is a {kind.replace('_', '-')} address"
        if not candidate.is_global:
            return f"{address} is not a public address"
    return None


def check_url(url: str, policy: RemotePicturePolicy) -> tuple[str, int]:
    """(host, port) of a URL that may be fetched under ``policy``; raises RemoteRefused otherwise."""
    if not policy.enabled:
        raise RemoteNotAllowed("remote pictures are not fetched: DOCSIGHT_REMOTE_PICTURES is off")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RemoteRefused(f"only http and https pictures are fetched, not {scheme or 'this'}: {url[:200]}")
    host = (parts.hostname or "").lower()
    if not host:
        raise RemoteRefused(f"no host in {url[:200]}")
    if not host_allowed(host, policy.hosts):
        raise RemoteNotAllowed(f"{host} is not on DOCSIGHT_REMOTE_PICTURE_HOSTS")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise RemoteRefused(f"invalid port in {url[:200]}") from None
    return host, port


def resolve_public(host: str, port: int) -> list[str]:
    """Every address of ``host``; raises RemoteRefused if any one is not public (any could be used)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RemoteRefused(f"{host} cannot be resolved: {error}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise RemoteRefused(f"{host} cannot be resolved")
    for address in addresses:
        refusal = address_refusal(address)
        if refusal:
            raise RemoteRefused(f"{host}: {refusal}")
    return addresses


def fetch(url: str, policy: RemotePicturePolicy) -> bytes:
    """The picture's bytes, within the policy's caps; raises RemoteRefused with the reason otherwise."""
    import urllib3

    deadline = time.monotonic() + policy.timeout_seconds
    for _ in range(MAX_REDIRECTS + 1):
        host, port = check_url(url, policy)
        addresses = resolve_public(host, port)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteRefused(f"fetching took longer than {policy.timeout_seconds:.0f} s")
        timeout = urllib3.Timeout(connect=min(remaining, 5.0), read=remaining)
        host_header = host if port == SCHEMES[parts.scheme.lower()] else f"{host}:{port}"
        if parts.scheme.lower() == "https":
            pool = urllib3.HTTPSConnectionPool(addresses[0], port, timeout=timeout, retries=False,
                                               cert_reqs="CERT_REQUIRED", server_hostname=host, assert_hostname=host)
        else:
            pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False)
        with pool:
            try:
                response = pool.urlopen("GET", target, headers={"Host": host_header, "User-Agent": "docsight"},
                                        redirect=False, preload_content=False)
            except urllib3.exceptions.HTTPError as error:
                raise RemoteRefused(f"{host}: {error}") from None
            try:
                location = response.get_redirect_location()
                if location:
                    url = urljoin(url, location)
                    continue
                if response.status >= 400:
                    raise RemoteRefused(f"HTTP {response.status} from {host}")
                return _read_capped(response, policy.max_bytes, deadline)
            except urllib3.exceptions.HTTPError as error:
                raise RemoteRefused(f"{host}: {error}") from None
            finally:
                response.release_conn()
    raise RemoteRefused(f"more than {MAX_REDIRECTS} redirects")


def _read_capped(response, max_bytes: int, deadline: float) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise RemoteRefused(f"{int(length):,} bytes, above the cap of {max_bytes:,}")
    chunks, total = [], 0
    try:
        for chunk in response.stream(64 * 1024):
            total += len(chunk)
            if total > max_bytes:
                raise RemoteRefused(f"more than {max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise RemoteRefused("the download took too long")
            chunks.append(chunk)
    except OSError as error:
        raise RemoteRefused(f"download interrupted: {error}") from None
    return b"".join(chunks)
