"""The one guarded outbound HTTP client: every request the product sends to a URL goes through `request`.

Workflow authors choose the URLs, so any outbound call could be aimed at the server's own network
(server-side request forgery). This module therefore accepts only http(s) URLs without credentials,
resolves the host once, refuses non-public addresses (by IANA's registries: `address_ranges`) unless
the operator allow-listed them (`DWC_OUTBOUND_ALLOWLIST`), and then connects to exactly the address
it checked: the URL sent to httpx2 carries the IP, while the `Host` header and TLS (SNI and
certificate check) carry the name, so a DNS answer that changes between check and connect
(rebinding) cannot move the connection.
Redirects are followed here, hop by hop, with the same checks. HTTP(S)_PROXY is not used (a proxy
would resolve names itself); SSL_CERT_FILE / SSL_CERT_DIR are, for operators with a private CA.

Failures are `TransientError`s (timeouts, DNS and connection errors) or `PermanentError`s (refused
destination, oversized response). Non-2xx answers are returned: callers decide what they mean.
Nothing that may hold a secret is logged: no paths, queries, headers or bodies.

Vendor SDKs (openai, anthropic) bring their own HTTP client; `http_client()` hands them one whose
transport, `GuardedTransport`, sends every request through the same check-and-pin path. The library
is httpx2, the httpx successor those SDKs are built on, so there is one HTTP stack for both ways out.

The modules: `destinations` (the URL's form and the address check), `connection` (one hop to a checked
address, its body capped), `client` (`request`: a whole call, redirects followed), `sdk_transport`
(`http_client` for the SDKs) and `errors`.
"""
