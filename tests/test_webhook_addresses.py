"""No server-side request forgery through a webhook URL (CONTRACT §5): outside
WEBHOOK_ALLOW_PRIVATE, a URL that is not https, or whose host resolves to a private,
loopback, link-local (or otherwise not public) address, answers 422 when registered and is
never called; the check runs again at send time, after resolving, and the connection goes to
the address checked. Names resolve through a patched resolver (socket.getaddrinfo in this
process), and a guard on socket.connect records any connection attempted to an address
other than this machine's loopback (the database and Redis): no traffic ever goes to the
ranges tested."""

import socket

import pytest

from leads.webhooks.addresses import RefusedTarget, check, forbidden
from tests.helpers import (
    WebhookReceiver,
    field_errors,
    register_webhook,
    send_due_webhooks,
    transition,
)

PUBLIC = "93.184.215.14"
PRIVATE_ADDRESSES = ["10.1.2.3", "172.16.5.4", "172.31.255.1", "192.168.1.10", "127.0.0.1",
                     "127.8.9.10", "169.254.169.254", "::1", "fc00::1", "fd12:3456::1",
                     "fe80::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "::",
                     "224.0.0.1", "ff02::1", "100.64.0.1", "64:ff9b::a00:1", "2002:a00:1::"]


class Resolver:
    """Answers the names it was told with the addresses it was told; others as usual."""

    def __init__(self, real):
        self.real = real
        self.names: dict[str, list[str]] = {}

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.names:
            return self.real(host, port, family, type, proto, flags)
        if not self.names[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", (address, port or 443)) for address in self.names[host]]


@pytest.fixture
def resolver(monkeypatch):
    patched = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", patched)
    return patched


@pytest.fixture
def connections(monkeypatch):
    """Every connection attempted to an address other than the loopback ones the database
    and Redis are on; such a connection is refused before any packet leaves."""
    attempted = []
    real_connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
                "127.0.0.1", "::1"):
            attempted.append(address)
            raise ConnectionRefusedError(f"the test's guard refuses {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempted


@pytest.fixture
def clinic_key(routed, setting):
    """A referred clinic's key, with WEBHOOK_ALLOW_PRIVATE off (as it is by default)."""
    setting("WEBHOOK_ALLOW_PRIVATE", False)
    return routed["keys"][min(routed["referrals"])]


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
def test_a_name_resolving_to_an_address_that_is_not_public_is_refused(
        app, client, clinic_key, resolver, connections, address):
    resolver.names["hooks.clinic.example"] = [address]
    errors = field_errors(register_webhook(client, clinic_key,
                                           "https://hooks.clinic.example/leads"))
    assert "not public" in errors["url"][0]
    assert connections == []


@pytest.mark.parametrize("url", ["https://127.0.0.1/hooks", "https://[::1]:8443/hooks",
                                 "https://10.0.0.8/hooks", "https://169.254.169.254/latest",
                                 "https://[::ffff:192.168.0.1]/hooks"])
def test_an_address_literal_that_is_not_public_is_refused(client, clinic_key, connections, url):
    # Refused as not public, or already as a URL the schema does not take.
    assert field_errors(register_webhook(client, clinic_key, url))["url"]
    assert connections == []


def test_a_name_with_any_address_that_is_not_public_is_refused(client, clinic_key, resolver):
    resolver.names["mixed.clinic.example"] = [PUBLIC, "192.168.7.7"]
    errors = field_errors(register_webhook(client, clinic_key, "https://mixed.clinic.example/"))
    assert "192.168.7.7" in errors["url"][0]


def test_plain_http_is_refused_even_on_a_public_address(client, clinic_key, resolver):
    resolver.names["plain.clinic.example"] = [PUBLIC]
    errors = field_errors(register_webhook(client, clinic_key, "http://plain.clinic.example/"))
    assert errors["url"] == ["The URL must be https."]


def test_a_name_that_does_not_resolve_is_refused(client, clinic_key, resolver):
    resolver.names["nowhere.clinic.example"] = []
    errors = field_errors(register_webhook(client, clinic_key, "https://nowhere.clinic.example/"))
    assert "does not resolve" in errors["url"][0]


def test_a_public_https_name_is_taken(client, clinic_key, resolver, connections):
    resolver.names["hooks.clinic.example"] = [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    response = register_webhook(client, clinic_key, "https://hooks.clinic.example/leads?x=1")
    assert response.status_code == 201, response.get_json()
    assert connections == []  # registering resolves; it connects nowhere


def test_a_name_that_resolves_elsewhere_at_send_time_is_never_called(
        app, client, routed, clinic_key, resolver, connections):
    """DNS rebinding: public when registered, private when the worker sends. The attempt is
    recorded as refused, no connection is tried, and the message waits for a retry."""
    resolver.names["rebind.clinic.example"] = [PUBLIC]
    endpoint = register_webhook(client, clinic_key, "https://rebind.clinic.example/h")
    assert endpoint.status_code == 201
    resolver.names["rebind.clinic.example"] = ["10.0.0.7"]
    assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
    assert send_due_webhooks(app) == 1
    assert connections == []
    [attempt] = client.get(f"/api/v1/clinic/webhooks/{endpoint.get_json()['id']}/deliveries",
                           headers=clinic_key).get_json()["items"]
    assert attempt["status_code"] is None and attempt["succeeded"] is False
    assert attempt["error"].startswith("Refused: ") and "10.0.0.7" in attempt["error"]
    assert send_due_webhooks(app) == 0  # its backoff is not over yet


def test_an_endpoint_allowed_while_private_was_allowed_is_not_called_once_it_is_not(
        app, client, routed, clinic_key, setting):
    receiver = WebhookReceiver()
    receiver.start()
    try:
        setting("WEBHOOK_ALLOW_PRIVATE", True)
        endpoint = register_webhook(client, clinic_key, receiver.url("/hooks")).get_json()
        setting("WEBHOOK_ALLOW_PRIVATE", False)
        assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
        assert send_due_webhooks(app) == 1
    finally:
        receiver.stop()
    assert receiver.received() == []
    [attempt] = client.get(f"/api/v1/clinic/webhooks/{endpoint['id']}/deliveries",
                           headers=clinic_key).get_json()["items"]
    assert attempt["error"] == "Refused: The URL must be https."


def test_a_redirect_is_not_followed(app, client, routed, clinic_key, setting):
    """A redirect is a failed attempt, whatever it points to: shown here with both servers on
    the loopback (WEBHOOK_ALLOW_PRIVATE on, the only way to have a receiver at all in a
    test); outside it the target would be checked, and is never reached either."""
    setting("WEBHOOK_ALLOW_PRIVATE", True)
    first, elsewhere = WebhookReceiver(), WebhookReceiver()
    first.start()
    elsewhere.start()
    try:
        endpoint = register_webhook(client, clinic_key, first.url("/hooks")).get_json()
        first.answer(307, location=elsewhere.url("/internal"))
        assert transition(client, routed["admin"], routed["lead_id"], "closed").status_code == 200
        assert send_due_webhooks(app) == 1
    finally:
        first.stop()
        elsewhere.stop()
    assert len(first.received()) == 1 and elsewhere.received() == []
    [attempt] = client.get(f"/api/v1/clinic/webhooks/{endpoint['id']}/deliveries",
                           headers=clinic_key).get_json()["items"]
    assert attempt["status_code"] == 307 and attempt["succeeded"] is False


@pytest.mark.parametrize(("address", "refused"), [
    *[(address, True) for address in PRIVATE_ADDRESSES],
    (PUBLIC, False), ("8.8.8.8", False), ("2606:4700:4700::1111", False),
    ("::ffff:8.8.8.8", False), ("172.32.0.1", False), ("192.169.0.1", False),
])
def test_which_addresses_are_not_public(address, refused):
    assert forbidden(address) is refused


@pytest.mark.parametrize(("url", "reason"), [
    ("https://user:pw@93.184.215.14/", "user name or password"),
    ("https://93.184.215.14:99999/", "port"),
    ("https:///nohost", "no host"),
    ("gopher://93.184.215.14/", "https"),
])
def test_urls_that_cannot_be_called_say_why(url, reason):
    with pytest.raises(RefusedTarget, match=reason):
        check(url, allow_private=False)


def test_an_internationalised_name_is_resolved_and_sent_in_idna(resolver):
    resolver.names["xn--clnica-4va.example"] = [PUBLIC]
    target = check("https://clínica.example/hooks", allow_private=False)
    assert (target.host, target.host_header, target.addresses) == (
        "xn--clnica-4va.example", "xn--clnica-4va.example", (PUBLIC,))


def test_with_private_allowed_http_and_the_loopback_are_taken():
    target = check("http://127.0.0.1:8080/hooks?a=1", allow_private=True)
    assert (target.scheme, target.addresses, target.path) == ("http", ("127.0.0.1",),
                                                              "/hooks?a=1")
    assert target.host_header == "127.0.0.1:8080"


def certificate_files(tmp_path, name: str) -> tuple[str, str, str]:
    """A CA of the test's own and a server certificate it issued for `name`: (CA file,
    certificate file, key file)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def issue(subject, issuer_name, key, signing_key, *, ca: bool, san=None):
        now = datetime.now(UTC)
        # OpenSSL checks validity by the system's clock, which `make test-future` does not
        # move (it shifts Python's): the window covers both.
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=800))
                   .not_valid_after(now + timedelta(days=800))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                            critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = issue(ca_name, ca_name, ca_key, ca_key, ca=True)
    server = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name,
                   server_key, ca_key, ca=False, san=name)
    paths = [tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return tuple(map(str, paths))


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """An HTTPS server on 127.0.0.1 with a certificate for hooks.clinic.test, trusted by this
    process (SSL_CERT_FILE); keeps the server name each client asked for and the Host header."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.helpers import free_port

    ca_file, cert_file, key_file = certificate_files(tmp_path, "hooks.clinic.test")
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    seen = {"server_names": [], "hosts": []}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, server_name, ctx: seen["server_names"].append(server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen["hosts"].append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port, seen
    server.shutdown()
    server.server_close()


def test_https_goes_to_the_address_checked_with_the_name_as_server_name_and_host(
        resolver, connections, tls_receiver):
    """The connection is made to the IP that passed the check, not to the name again: a
    resolver that answers otherwise after the check is not asked. The certificate is verified
    against the name (sent as SNI), and the Host header carries it."""
    from leads.webhooks.transport import post

    port, seen = tls_receiver
    resolver.names["hooks.clinic.test"] = ["127.0.0.1"]
    target = check(f"https://hooks.clinic.test:{port}/in", allow_private=True)
    resolver.names["hooks.clinic.test"] = ["10.0.0.9"]  # rebinding after the check
    answer = post(target, b"{}", {"Content-Type": "application/json"}, timeout=5)
    assert (answer.status_code, answer.error) == (204, None)
    assert seen["server_names"] == ["hooks.clinic.test"]
    assert seen["hosts"] == [f"hooks.clinic.test:{port}"]
    assert connections == []


def test_https_to_a_name_the_certificate_is_not_for_fails(resolver, tls_receiver):
    from leads.webhooks.transport import post

    port, seen = tls_receiver
    resolver.names["other.clinic.test"] = ["127.0.0.1"]
    target = check(f"https://other.clinic.test:{port}/in", allow_private=True)
    answer = post(target, b"{}", {}, timeout=5)
    assert answer.status_code is None and "certificate" in answer.error.lower()
    assert seen["hosts"] == []
