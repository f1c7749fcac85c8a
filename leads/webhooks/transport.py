"""One POST to a webhook endpoint, made to an address that was checked (addresses.check).

The connection goes to the checked IP itself, never to the name (which a resolver could
answer differently a moment later); the name travels in the Host header and, over TLS, as
the server name (SNI) the certificate is verified against. Redirects are not followed: a 3xx
is answered as it came, and counts as a failed attempt. Connecting and reading the answer
each give up after the timeout.
"""

import ipaddress
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from leads.webhooks.addresses import Target

ERROR_LENGTH = 500


@dataclass(frozen=True)
class Answer:
    """The endpoint's status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_LENGTH]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "http":
        return urllib3.HTTPConnectionPool(address, target.port, timeout=limits, retries=False)
    # An IP literal in the URL is matched against the certificate's addresses, as it is.
    server_name = None if _is_ip_literal(target.host) else target.host
    return urllib3.HTTPSConnectionPool(address, target.port, timeout=limits, retries=False,
                                       server_hostname=server_name)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST the body to the target's addresses in turn until one takes the connection."""
    failure: Exception | None = None
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen("POST", target.path, body=body,
                                    headers={**headers, "Host": target.host_header},
                                    redirect=False, retries=False, assert_same_host=False,
                                    preload_content=False)
            response.release_conn()
            return Answer(status_code=response.status)
        except (NewConnectionError, ConnectTimeoutError) as error:
            failure = error  # this address took no connection: the next may
        except HTTPError as error:
            return Answer(error=describe(error))
        finally:
            pool.close()
    return Answer(error=describe(failure) if failure else "The host has no address.")
