"""The guarded outbound client against real local HTTP(S) servers; the only stand-in is a fake DNS answer."""

import datetime
import gzip
import json
import socket
import ssl
import sys
import threading
import time

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings as django_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.workflows.hanging_server import HangingServer
from workflows.engine import cancellation
from workflows.engine.egress.client import NOT_JSON, request
from workflows.engine.egress.errors import (
    EgressConnectionError,
    EgressForbidden,
    EgressResponseTooLarge,
    EgressTimeout,
    EgressTooManyRedirects,
)
from workflows.engine.egress.sdk_transport import http_client
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.nodes.base import StepContext
from workflows.engine.nodes.http_request import HttpRequestNode


@pytest.fixture
def allow(settings):
    def set_allowlist(*entries: str) -> None:
        settings.DWC_OUTBOUND_ALLOWLIST = list(entries)

    set_allowlist()
    return set_allowlist


@pytest.fixture
def loopback_url(httpserver):
    """URLs of the test server by its 127.0.0.1 address (httpserver.url_for uses the name localhost)."""
    return lambda path: f"http://127.0.0.1:{httpserver.port}{path}"


@pytest.fixture
def slow_server():
    """A server of its own for slow answers, so the shared one is not left busy for the next test."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Every socket.connect of this process while a test records them, seen through Python's audit events
# (an audit hook cannot be removed, so one hook serves every test and records only when asked).
_connects: list[list] = []
sys.addaudithook(lambda event, args: _connects[-1].append(args[1]) if event == "socket.connect" and _connects else None)


@pytest.fixture
def connects():
    """The addresses this process tried to connect to during the test."""
    seen: list = []
    _connects.append(seen)
    yield seen
    _connects.remove(seen)


# --- requests that reach an allow-listed server ---------------------------------------------------


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8"])
def test_get_sends_query_and_headers_and_returns_status_and_body(httpserver, allow, loopback_url, entry):
    allow(entry)
    httpserver.expect_request(
        "/items", method="GET", query_string={"page": "2", "q": "a b"}, headers={"X-Token": "t1"}
    ).respond_with_json({"items": [1, 2]}, headers={"X-Count": "2"})

    response = request("get", loopback_url("/items"), params={"page": 2, "q": "a b"}, headers={"X-Token": "t1"})

    assert response.status == 200
    assert response.json() == {"items": [1, 2]}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-count"] == "2"
    assert response.url == loopback_url("/items?page=2&q=a+b")
    assert response.elapsed_ms > 0
    received = httpserver.log[0][0]
    assert received.headers["Host"] == f"127.0.0.1:{httpserver.port}"
    assert received.headers["User-Agent"] == f"DocumentWorkflowChain/{django_settings.VERSION}"


def test_an_allow_listed_host_name_keeps_its_name_in_the_host_header(httpserver, allow):
    allow("LOCALHOST")
    httpserver.expect_request("/ping").respond_with_data("pong")

    response = request("GET", httpserver.url_for("/ping"))

    assert response.text() == "pong"
    assert response.url == httpserver.url_for("/ping")
    assert httpserver.log[0][0].headers["Host"] == f"localhost:{httpserver.port}"


def test_post_json_form_and_raw_bodies_reach_the_server(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/json", method="POST", json={"name": "Ada", "tags": ["x"]}).respond_with_data("j")
    httpserver.expect_request("/null", method="POST", data=b"null").respond_with_data("n")
    httpserver.expect_request("/form", method="POST", data="a=1&b=two+words").respond_with_data("f")
    httpserver.expect_request("/raw", method="PUT", data=b"\x00raw bytes").respond_with_data("r")

    answers = [
        request("POST", loopback_url("/json"), json={"name": "Ada", "tags": ["x"]}),
        request("POST", loopback_url("/null"), json=None),
        request("POST", loopback_url("/form"), data={"a": "1", "b": "two words"}),
        request("PUT", loopback_url("/raw"), content=b"\x00raw bytes", headers={"Content-Type": "x/y"}),
    ]

    assert [answer.text() for answer in answers] == ["j", "n", "f", "r"]
    content_types = [entry[0].headers["Content-Type"] for entry in httpserver.log]
    assert content_types == ["application/json", "application/json", "application/x-www-form-urlencoded", "x/y"]


def test_non_2xx_answers_are_returned_not_raised(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)
    httpserver.expect_request("/broken").respond_with_json({"error": "boom"}, status=503)

    assert request("GET", loopback_url("/missing")).status == 404
    broken = request("GET", loopback_url("/broken"))
    assert (broken.status, broken.json()) == (503, {"error": "boom"})


def test_response_helpers_join_repeated_headers_decode_charsets_and_reject_non_json(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/latin").respond_with_response(
        Response(
            "café".encode("latin-1"),
            headers=[("Content-Type", "text/plain; charset=latin-1"), ("X-A", "1"), ("X-A", "2")],
        )
    )

    response = request("GET", loopback_url("/latin"))

    assert response.text() == "café"
    assert response.headers["x-a"] == "1, 2"
    with pytest.raises(PermanentError, match=NOT_JSON):
        response.json()


# --- destinations refused before any connection ---------------------------------------------------

LOCAL_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::7f00:1]:{port}/",  # IPv4-compatible
    "http://[2002:7f00:1::]:{port}/",  # 6to4
    "http://[64:ff9b::7f00:1]:{port}/",  # NAT64
    "http://localhost:{port}/",
    "http://0.0.0.0:{port}/",
]


@pytest.mark.parametrize("template", LOCAL_FORMS)
def test_loopback_in_any_spelling_is_refused_without_the_allowlist(httpserver, allow, template):
    httpserver.expect_request("/").respond_with_data("should not be reached")

    with pytest.raises(EgressForbidden, match="not a public address") as refused:
        request("GET", template.format(port=httpserver.port))

    assert refused.value.details["address"]
    assert httpserver.log == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
    ],
)
def test_private_link_local_cgnat_metadata_and_multicast_addresses_are_refused(allow, url):
    with pytest.raises(EgressForbidden, match="not a public address"):
        request("GET", url, timeout=0.3)


# The special-purpose addresses the attack battery reached (issue 17, finding 3); the decision itself
# is tested against the registries in test_address_ranges.py.
SPECIAL_PURPOSE_REACHED = [
    "192.0.0.192",
    "192.0.0.8",
    "[::ffff:0:7f00:1]",
    "[::ffff:0:a9fe:a9fe]",
    "[64:ff9b:1::a9fe:a9fe]",
    "[64:ff9b:1::7f00:1]",
    "[fec0::1]",
]


@pytest.mark.parametrize("host", SPECIAL_PURPOSE_REACHED)
def test_special_purpose_addresses_are_refused_without_a_connection_attempt(allow, connects, host):
    with pytest.raises(EgressForbidden, match="not a public address"):
        request("GET", f"http://{host}:8080/latest/meta-data/", timeout=0.5)

    assert connects == []


@pytest.mark.parametrize("host", SPECIAL_PURPOSE_REACHED)
def test_an_http_request_node_aimed_at_a_special_purpose_address_connects_nowhere(allow, connects, host):
    context = StepContext(
        run_id="run-1", step_id="step-1", node_key="call", attempt=1, workspace_id="w", expressions={}
    )
    prepared = {"config": {"url": f"http://{host}:8080/", "timeout": 0.5}}

    with pytest.raises(EgressForbidden, match="not a public address"):
        HttpRequestNode.execute(prepared, context)

    assert connects == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.org/", "scheme 'ftp'"),
        ("gopher://example.org/", "scheme 'gopher'"),
        ("example.org/path", "scheme ''"),
        ("http://user:pw@example.org/", "credentials in the URL"),
        ("http://token@example.org/", "credentials in the URL"),
        ("http:///nohost", "no host"),
        ("http://example.org:99999/", "not a valid URL"),
    ],
)
def test_other_schemes_credentials_and_malformed_urls_are_refused(allow, url, message):
    with pytest.raises(EgressForbidden, match=message) as refused:
        request("GET", url)

    assert refused.value.retryable is False


def test_an_address_allowlist_does_not_open_other_local_addresses(httpserver, allow):
    allow("10.0.0.0/8", "localhost.example")
    httpserver.expect_request("/").respond_with_data("should not be reached")

    with pytest.raises(EgressForbidden):
        request("GET", f"http://127.0.0.1:{httpserver.port}/")

    assert httpserver.log == []


# --- redirects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/secret", "http://127.0.0.1:{port}/secret"],
)
def test_a_redirect_to_a_forbidden_address_is_refused(httpserver, allow, target):
    allow("localhost")  # the name only: 127.0.0.1 and ::1 by address stay forbidden
    httpserver.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": target.format(port=httpserver.port)}
    )
    httpserver.expect_request("/secret").respond_with_data("secret")

    with pytest.raises(EgressForbidden, match="not a public address"):
        request("GET", httpserver.url_for("/start"), timeout=0.5)

    assert [entry[0].path for entry in httpserver.log] == ["/start"]


def test_a_redirect_to_another_scheme_is_refused(httpserver, allow):
    allow("localhost")
    httpserver.expect_request("/start").respond_with_data("", status=301, headers={"Location": "file:///etc/passwd"})

    with pytest.raises(EgressForbidden, match="scheme 'file'"):
        request("GET", httpserver.url_for("/start"))


@pytest.mark.parametrize(("status", "method"), [(303, "POST"), (303, "PUT"), (302, "POST"), (301, "POST")])
def test_see_other_and_post_redirects_continue_as_get_without_body(httpserver, allow, loopback_url, status, method):
    allow("127.0.0.1")
    httpserver.expect_request("/submit", method=method).respond_with_data(
        "", status=status, headers={"Location": "/result?id=7"}
    )
    httpserver.expect_request("/result", method="GET", query_string="id=7").respond_with_data("done")

    response = request(method, loopback_url("/submit"), json={"a": 1})

    assert (response.status, response.text(), response.url) == (200, "done", loopback_url("/result?id=7"))
    follow_up = httpserver.log[1][0]
    assert follow_up.method == "GET"
    assert follow_up.get_data() == b""
    assert "Content-Type" not in follow_up.headers


@pytest.mark.parametrize("status", [307, 308])
def test_temporary_and_permanent_redirects_keep_method_and_body(httpserver, allow, loopback_url, status):
    allow("127.0.0.1")
    httpserver.expect_request("/old", method="POST").respond_with_data("", status=status, headers={"Location": "/new"})
    httpserver.expect_request("/new", method="POST", json={"a": 1}).respond_with_data("moved")

    response = request("POST", loopback_url("/old"), json={"a": 1})

    assert response.text() == "moved"
    assert [entry[0].method for entry in httpserver.log] == ["POST", "POST"]


def test_credentials_are_dropped_when_a_redirect_changes_host(httpserver, allow):
    allow("localhost", "127.0.0.1")
    httpserver.expect_request("/same").respond_with_data("", status=302, headers={"Location": "/other-host"})
    httpserver.expect_request("/other-host").respond_with_data(
        "", status=302, headers={"Location": f"http://127.0.0.1:{httpserver.port}/end"}
    )
    httpserver.expect_request("/end").respond_with_data("end")

    request("GET", httpserver.url_for("/same"), headers={"Authorization": "Bearer s3cret", "Cookie": "a=b"})

    seen = [
        (entry[0].path, entry[0].headers.get("Authorization"), entry[0].headers.get("Cookie"))
        for entry in httpserver.log
    ]
    assert seen == [
        ("/same", "Bearer s3cret", "a=b"),
        ("/other-host", "Bearer s3cret", "a=b"),
        ("/end", None, None),
    ]


@pytest.mark.parametrize("status", [302, 307])
def test_secret_headers_stay_with_the_origin_when_a_redirect_changes_port(httpserver, allow, slow_server, status):
    """Same host, another port: another origin. Authorization, Cookie and the headers the caller names
    as secret go to the first server only; the rest of the request goes on."""
    allow("127.0.0.1")
    other = f"http://127.0.0.1:{slow_server.port}/landing"
    httpserver.expect_request("/start").respond_with_data("", status=status, headers={"Location": other})
    slow_server.expect_request("/landing").respond_with_data("landed")
    secrets = {"Authorization": "Bearer s3cret", "Cookie": "a=b", "X-Api-Key": "k3y", "Webhook-Signature": "v1,x"}

    response = request(
        "POST",
        f"http://127.0.0.1:{httpserver.port}/start",
        headers={**secrets, "X-Trace": "t-1"},
        json={"a": 1},
        secret_headers=("x-api-key", "webhook-signature"),
    )

    assert response.text() == "landed"
    first, second = httpserver.log[0][0], slow_server.log[0][0]
    assert all(first.headers.get(name) == value for name, value in secrets.items())
    assert [name for name in secrets if name in second.headers] == []
    assert second.headers["X-Trace"] == "t-1"


def test_secret_headers_follow_a_redirect_within_the_origin(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/start").respond_with_data("", status=307, headers={"Location": "/next"})
    httpserver.expect_request("/next").respond_with_data("next")

    request("GET", loopback_url("/start"), headers={"X-Api-Key": "k3y"}, secret_headers=("X-Api-Key",))

    assert [entry[0].headers.get("X-Api-Key") for entry in httpserver.log] == ["k3y", "k3y"]


def test_more_redirects_than_allowed_fail_permanently(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})

    with pytest.raises(EgressTooManyRedirects, match="more than 2 redirects") as failed:
        request("GET", loopback_url("/loop"), max_redirects=2)

    assert isinstance(failed.value, PermanentError)
    assert len(httpserver.log) == 3


def test_redirects_are_returned_when_not_followed(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/moved").respond_with_data("", status=302, headers={"Location": "http://10.0.0.1/"})

    response = request("GET", loopback_url("/moved"), follow_redirects=False)

    assert (response.status, response.headers["location"]) == (302, "http://10.0.0.1/")


# --- size, time and connection failures -----------------------------------------------------------


def test_a_response_larger_than_the_limit_fails(httpserver, allow, loopback_url, settings):
    allow("127.0.0.1")
    settings.DWC_OUTBOUND_MAX_RESPONSE_BYTES = 1000
    httpserver.expect_request("/declared").respond_with_data(b"x" * 1001)
    httpserver.expect_request("/streamed").respond_with_response(Response(iter([b"x" * 600, b"y" * 600])))
    httpserver.expect_request("/fits").respond_with_data(b"x" * 1000)

    with pytest.raises(EgressResponseTooLarge, match="larger than 1000 bytes"):
        request("GET", loopback_url("/declared"))
    with pytest.raises(EgressResponseTooLarge):
        request("GET", loopback_url("/streamed"))
    with pytest.raises(EgressResponseTooLarge, match="larger than 10 bytes"):
        request("GET", loopback_url("/fits"), max_response_bytes=10)
    assert len(request("GET", loopback_url("/fits")).body) == 1000


def test_compressed_bodies_are_decoded_and_the_limit_counts_decoded_bytes(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    gzip_headers = {"Content-Encoding": "gzip"}
    httpserver.expect_request("/small").respond_with_data(gzip.compress(b"hello"), headers=gzip_headers)
    httpserver.expect_request("/bomb").respond_with_data(gzip.compress(b"0" * 1_000_000), headers=gzip_headers)

    assert request("GET", loopback_url("/small")).body == b"hello"
    with pytest.raises(EgressResponseTooLarge):
        request("GET", loopback_url("/bomb"), max_response_bytes=100_000)


def test_a_server_slower_than_the_timeout_times_out(slow_server, allow):
    allow("127.0.0.1")

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    slow_server.expect_request("/slow").respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(EgressTimeout) as failed:
        request("GET", slow_server.url_for("/slow"), timeout=0.2)

    assert time.monotonic() - started < 0.5
    assert isinstance(failed.value, TransientError)


def test_a_server_that_trickles_its_body_is_cut_at_the_timeout(slow_server, allow):
    """Each byte comes well within the read timeout; the hop deadline is what stops the download."""
    allow("127.0.0.1")

    def trickle():
        for _ in range(20):
            yield b"x"
            time.sleep(0.1)

    slow_server.expect_request("/trickle").respond_with_response(Response(trickle()))

    started = time.monotonic()
    with pytest.raises(EgressTimeout):
        request("GET", slow_server.url_for("/trickle"), timeout=0.35)

    assert 0.3 < time.monotonic() - started < 0.7
    assert len(slow_server.log) == 1


def test_a_closed_port_is_a_connection_error(allow):
    allow("127.0.0.1")

    with pytest.raises(EgressConnectionError, match=r"could not connect to 127\.0\.0\.1") as failed:
        request("GET", f"http://127.0.0.1:{closed_port()}/")

    assert failed.value.retryable is True


def test_a_name_that_does_not_resolve_is_a_connection_error(allow, monkeypatch):
    def no_such_host(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)  # a DNS server answering NXDOMAIN

    with pytest.raises(EgressConnectionError, match=r"could not resolve nowhere\.test"):
        request("GET", "https://nowhere.test/")


# --- DNS rebinding ------------------------------------------------------------------------------------


def test_the_connection_goes_to_the_address_that_was_checked(httpserver, allow, monkeypatch):
    """A hostile DNS server answers an allowed address first and loopback afterwards: the second answer
    must never be asked for, let alone used. 127.0.0.2 plays the checked address, so no packet leaves
    the machine; the test server on 127.0.0.1 (same port) is where a second lookup would lead."""
    allow("127.0.0.2")
    httpserver.expect_request("/").respond_with_data("rebound: should not be reached")
    pinned = HTTPServer(host="127.0.0.2", port=httpserver.port)
    pinned.expect_request("/").respond_with_data("checked address")
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def hostile_dns(host, port, *args, **kwargs):
        lookups.append(host)
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = "127.0.0.2" if lookups.count("rebind.test") == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", hostile_dns)
    pinned.start()
    try:
        response = request("GET", f"http://rebind.test:{httpserver.port}/", timeout=0.3)
        received = pinned.log[0][0]
    finally:
        pinned.stop()

    assert response.text() == "checked address"
    assert received.headers["Host"] == f"rebind.test:{httpserver.port}"
    assert httpserver.log == []
    assert lookups.count("rebind.test") == 1
    # socket.create_connection passes the IP literal through getaddrinfo, which does no DNS for it.
    assert set(lookups) <= {"rebind.test", "127.0.0.2"}


def issue_certificate(tmp_path, *, names: list[str]) -> tuple[str, ssl.SSLContext]:
    """A throw-away CA (its PEM path is returned, for SSL_CERT_FILE) and a server context for `names`."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca: bool, sans: list[str]):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("egress test CA", "egress test CA", ca_key.public_key(), ca_key, ca=True, sans=[])
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = certificate(names[0], "egress test CA", leaf_key.public_key(), ca_key, ca=False, sans=names)
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return str(ca_path), context


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """Start an HTTPS server on 127.0.0.1 with a certificate for the given names; records the SNI it sees."""
    servers: list[HTTPServer] = []

    def start(names: list[str]) -> tuple[HTTPServer, list[str]]:
        ca_path, context = issue_certificate(tmp_path, names=names)
        monkeypatch.setenv("SSL_CERT_FILE", ca_path)
        server_names: list[str] = []
        context.sni_callback = lambda _socket, name, _context: server_names.append(name)
        server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
        server.expect_request("/").respond_with_data("over tls")
        server.start()
        servers.append(server)
        return server, server_names

    yield start
    for server in servers:
        server.stop()


def test_https_connects_to_the_address_but_verifies_and_sends_the_host_name(allow, tls_server):
    allow("localhost")
    server, server_names = tls_server(["localhost"])

    response = request("GET", f"https://localhost:{server.port}/")

    assert response.text() == "over tls"
    assert server_names == ["localhost"]
    assert server.log[0][0].headers["Host"] == f"localhost:{server.port}"


def test_a_certificate_for_another_name_is_a_connection_error(allow, tls_server):
    allow("localhost")
    server, server_names = tls_server(["elsewhere.test"])

    with pytest.raises(EgressConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|hostname"):
        request("GET", f"https://localhost:{server.port}/")

    assert server_names == ["localhost"]
    assert server.log == []


# --- what the module itself refuses to do ----------------------------------------------------------------


def test_only_one_kind_of_body_is_accepted(allow):
    with pytest.raises(ValueError, match="at most one"):
        request("POST", "https://example.org/", json={}, content=b"x")


def test_a_json_body_that_cannot_be_encoded_fails_permanently(allow):
    with pytest.raises(PermanentError, match="not JSON-serialisable"):
        request("POST", "https://example.org/", json={"when": object()})


def test_json_null_body_is_distinct_from_no_body(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request("/").respond_with_data("ok")

    request("POST", loopback_url("/"), json=None)
    request("POST", loopback_url("/"))

    assert [entry[0].get_data() for entry in httpserver.log] == [b"null", b""]
    assert json.loads(httpserver.log[0][0].get_data()) is None


# --- the transport vendor SDKs use (egress.sdk_transport.http_client) ------------------------------------------------


def test_the_sdk_client_refuses_loopback_unless_allow_listed(httpserver, allow, loopback_url):
    httpserver.expect_request("/v1/ping").respond_with_data("should not be reached")

    with http_client(1) as client, pytest.raises(EgressForbidden, match="not a public address"):
        client.get(loopback_url("/v1/ping"))

    assert httpserver.log == []


def test_the_sdk_client_reaches_an_allow_listed_server_with_the_request_as_built(httpserver, allow, loopback_url):
    allow("127.0.0.1")
    httpserver.expect_request(
        "/v1/echo", method="POST", query_string="a=1", json={"q": "hi"}, headers={"Authorization": "Bearer k"}
    ).respond_with_json({"ok": True})

    with http_client(1) as client:
        response = client.post(loopback_url("/v1/echo?a=1"), json={"q": "hi"}, headers={"Authorization": "Bearer k"})

    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert httpserver.log[0][0].headers["Host"] == f"127.0.0.1:{httpserver.port}"


def test_the_sdk_client_does_not_follow_redirects_and_checks_every_hop_when_asked_to(httpserver, allow):
    allow("localhost")  # the name only: 127.0.0.1 by address stays forbidden
    httpserver.expect_request("/start").respond_with_data(
        "", status=307, headers={"Location": f"http://127.0.0.1:{httpserver.port}/secret"}
    )
    httpserver.expect_request("/secret").respond_with_data("secret")

    with http_client(1) as client:
        assert client.get(httpserver.url_for("/start")).status_code == 307
        with pytest.raises(EgressForbidden, match="not a public address"):
            client.get(httpserver.url_for("/start"), follow_redirects=True)

    assert [entry[0].path for entry in httpserver.log] == ["/start", "/start"]


def test_the_sdk_client_streams_a_body_as_it_arrives_and_closes_with_it(slow_server, allow):
    allow("127.0.0.1")

    def events():
        for number in range(3):
            yield f"data: {number}\n\n".encode()
            time.sleep(0.1)

    slow_server.expect_request("/events").respond_with_response(Response(events(), mimetype="text/event-stream"))

    with http_client(2) as client, client.stream("GET", slow_server.url_for("/events")) as response:
        arrivals = [(time.monotonic(), chunk) for chunk in response.iter_bytes()]

    assert b"".join(chunk for _, chunk in arrivals) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert arrivals[-1][0] - arrivals[0][0] >= 0.15  # read while the server was still sending
    assert response.is_closed


def test_the_sdk_client_times_out_with_httpx2_errors_the_sdks_know(slow_server, allow):
    allow("127.0.0.1")

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    slow_server.expect_request("/slow").respond_with_handler(slow)

    with http_client(0.2) as client, pytest.raises(httpx2.TimeoutException):
        client.get(slow_server.url_for("/slow"))


def test_the_sdk_client_caps_the_body_and_hands_it_on_decoded(httpserver, allow, loopback_url, settings):
    allow("127.0.0.1")
    settings.DWC_OUTBOUND_MAX_RESPONSE_BYTES = 1000
    httpserver.expect_request("/big").respond_with_data(
        gzip.compress(b"0" * 5000), headers={"Content-Encoding": "gzip"}
    )
    httpserver.expect_request("/small").respond_with_data(gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"})

    with http_client(1) as client:
        assert client.get(loopback_url("/small")).content == b"hello"
        with pytest.raises(EgressResponseTooLarge):
            client.get(loopback_url("/big"))


def test_a_stopped_steps_call_is_cut_off_and_says_so(allow):
    """What the heartbeat does to a cancelled step: the blocked read returns at once with StepStopped."""
    allow("127.0.0.1")
    server = HangingServer()
    stoppable = cancellation.CancelScope()
    outcome = {}

    def call() -> None:
        with cancellation.scope(stoppable):
            try:
                request("GET", server.url, timeout=60)
            except Exception as error:  # the test inspects whatever it was
                outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    assert server.received.wait(10)
    stoppable.cancel()
    caller.join(5)
    assert not caller.is_alive()
    assert isinstance(outcome["error"], cancellation.StepStopped)
    assert server.hung_up.wait(5)
    with cancellation.scope(stoppable), pytest.raises(cancellation.StepStopped):
        request("GET", server.url, timeout=60)  # a stopped step starts no new call


def test_a_stopped_steps_call_over_tls_is_cut_off_too(allow, tls_server):
    """The heartbeat shuts the socket under the TLS layer, which wakes a read blocked inside it."""
    allow("localhost")
    server, _ = tls_server(["localhost"])
    received, release = threading.Event(), threading.Event()

    def hang(_request):
        received.set()
        release.wait(30)
        return Response("late")

    server.expect_request("/hang").respond_with_handler(hang)
    stoppable, outcome = cancellation.CancelScope(), {}

    def call() -> None:
        with cancellation.scope(stoppable):
            try:
                request("GET", f"https://localhost:{server.port}/hang", timeout=60)
            except Exception as error:  # the test inspects whatever it was
                outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert received.wait(10)
        stoppable.cancel()
        caller.join(5)
        assert not caller.is_alive()
        assert isinstance(outcome["error"], cancellation.StepStopped)
    finally:
        release.set()
        caller.join(5)
