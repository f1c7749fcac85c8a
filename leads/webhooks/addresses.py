"""Where a webhook may be sent: no server-side request forgery through its URL (CONTRACT §5).

Outside WEBHOOK_ALLOW_PRIVATE a URL must be `https`, and every address its host resolves to
must be a public one: not private, loopback, link-local, unspecified, multicast or reserved,
an IPv6 address that carries an IPv4 one (`::ffff:10.0.0.1`) judged by the address it
carries. The check runs when the endpoint is registered and again before every send, whose
connection goes to one of the very addresses checked (leads/webhooks/transport.py): a name
that resolves elsewhere between the check and the connection is never followed there.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"https": 443, "http": 80}
# IPv6 prefixes that carry an IPv4 address in their last 32 bits and lead to it (NAT64).
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedTarget(Exception):
    """Why the URL may not be called, in words fit for the clinic and the attempt log."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the addresses its host resolved to (all of them allowed)."""

    scheme: str
    host: str
    port: int
    path: str  # with the query, as the request line carries it
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone says nothing here
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour
        if ip in NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            ip = carried
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified
            or ip.is_multicast or ip.is_reserved or not ip.is_global)


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address the host resolves to, in the resolver's order, each once."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedTarget(f"The host {host} does not resolve ({error}).") from None
    return tuple(dict.fromkeys(info[4][0] for info in found))


def split(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise RefusedTarget("The URL must be https.")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise RefusedTarget("The URL's port is not a number from 1 to 65535.") from None
    if not parts.hostname:
        raise RefusedTarget("The URL has no host.")
    try:
        # The name as DNS and the Host header take it: an internationalised one in IDNA.
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise RefusedTarget("The URL's host is not a valid name.") from None
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("The URL must not carry a user name or password.")
    path = parts.path or "/"
    return scheme, host, port, f"{path}?{parts.query}" if parts.query else path


def check(url: str, allow_private: bool) -> Target:
    """The URL, resolved and judged; raises `RefusedTarget` saying why it may not be called."""
    scheme, host, port, path = split(url, allow_private)
    addresses = resolve(host, port)
    if not allow_private:
        refused = [address for address in addresses if forbidden(address)]
        if refused:
            raise RefusedTarget(f"The host {host} resolves to an address that is not public "
                                f"({', '.join(refused)}).")
    return Target(scheme, host, port, path, addresses)
