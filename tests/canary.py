"""A pytest plugin: every response the suite gets is searched for secrets and password hashes.

What counts as a secret is learnt while the suite runs, from the functions that make one:
`workflows.credentials.encrypt` (the string values of credential values and webhook secrets, except
the keys that name rather than hide something), `accounts.api_keys.api_key_create` (the raw key),
`workflows.services.webhooks.webhook_create`/`webhook_rotate` (the token), and Django's
`make_password` (hashes whose algorithm prefix below would not already give them away). A response
is searched for the prefixes of password hashes and for every secret known when its request
started: the one answer that shows a new key or token is not held against it (see `Canaries`).

The search sits under Django's test `Client`/`AsyncClient`, in `BaseHandler.get_response(_async)`,
so it also covers requests through the WSGI/ASGI handlers (schemathesis, live servers). A hit raises
`CanaryLeak` where the request was made, and is also recorded, so that the test fails even when the
request came from another thread or the error was swallowed. Streaming bodies are searched as the
test reads them (a body the test never reads is never searched); nothing is read ahead.
"""

import functools
import html
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType

import pytest
from django.conf import settings
from django.contrib.auth import hashers
from django.core.handlers.base import BaseHandler
from django.utils.module_loading import import_string

from accounts import api_keys
from workflows import credentials
from workflows.services import webhooks

# Shorter strings, or ones of a few characters repeated (a fuzzer's "00000000"), turn up in innocent
# text too often to mean anything.
MIN_LENGTH = 8
MIN_DISTINCT_CHARACTERS = 4
# Keys of credential values that say where or as whom, not the secret itself.
NOT_SECRET_KEYS = frozenset({"name", "username", "host", "base_url", "organization"})
# Hash formats of Django's hashers besides the configured ones (settings.PASSWORD_HASHERS adds its own).
HASH_PREFIXES = ("pbkdf2_sha256$", "pbkdf2_sha1$", "argon2$", "bcrypt$", "bcrypt_sha256$", "scrypt$")

# Set while a request is being handled (per thread and per asyncio task).
_in_request: ContextVar[bool] = ContextVar("canary_in_request", default=False)

LEAK = "{method} {path} answered {status} with {kind} in its body"


class CanaryLeak(AssertionError):
    """A response carried a secret (the message names the request and the kind, never the secret)."""


@dataclass(frozen=True)
class Needle:
    pattern: bytes
    kind: str


def _spellings(value: str) -> set[bytes]:
    """The secret as a body may hold it: raw, escaped in JSON (either way), escaped in HTML."""
    return {
        spelling.encode()
        for spelling in (
            value,
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1],
            html.escape(value),
        )
    }


class Canaries:
    """Secrets known so far. It only grows, so a snapshot is the needles up to a count.

    A secret made while a request is being handled is searched for once that request has answered: the
    answer may show a new token once (the API's creating responses, the admin's rotation page), but no
    later page may, not even the one a redirect leads to (a flash message would park it in a cookie).
    """

    def __init__(self) -> None:
        self._needles: list[Needle] = []
        self._learnt: set[str] = set()
        self._pending: list[tuple[str, str]] = []  # (value, kind) made by the request being answered
        self._lock = threading.Lock()
        self._snapshot: tuple[Needle, ...] = ()

    def register(self, value: object, kind: str) -> None:
        if not isinstance(value, str) or len(value) < MIN_LENGTH or len(set(value)) < MIN_DISTINCT_CHARACTERS:
            return
        if value in self._learnt:
            return
        with self._lock:
            self._learnt.add(value)
            if _in_request.get():
                self._pending.append((value, kind))
            else:
                self._activate(value, kind)

    def _activate(self, value: str, kind: str) -> None:
        self._needles.extend(Needle(pattern, kind) for pattern in _spellings(value))

    def answered(self) -> None:
        """A request has been answered: the secrets it made count from now on."""
        if not self._pending:
            return
        with self._lock:
            for value, kind in self._pending:
                self._activate(value, kind)
            self._pending = []

    def knows(self, value: str) -> bool:
        """Whether `value` went through a function that makes secrets (searched for now, or soon)."""
        return value in self._learnt

    def searched(self) -> int:
        return len(self._learnt) - len(self._pending)

    def snapshot(self) -> tuple[Needle, ...]:
        if len(self._snapshot) != len(self._needles):
            with self._lock:
                self._snapshot = tuple(self._needles)
        return self._snapshot


canaries = Canaries()
_hits: list[str] = []
_stats = {"responses": 0, "streams": 0, "bytes": 0, "seconds": 0.0}


def take_hits() -> list[str]:
    """The leaks recorded since the current test started, forgotten from now on (for tests that cause one)."""
    taken = list(_hits)
    _hits.clear()
    return taken


@functools.cache
def _hash_prefixes(hasher_paths: tuple[str, ...]) -> tuple[Needle, ...]:
    algorithms = {import_string(path).algorithm + "$" for path in hasher_paths}
    return tuple(Needle(prefix.encode(), "a password hash") for prefix in sorted({*HASH_PREFIXES, *algorithms}))


def _hash_needles() -> tuple[Needle, ...]:
    # By the hashers configured now: a test may override PASSWORD_HASHERS.
    return _hash_prefixes(tuple(settings.PASSWORD_HASHERS))


def _needles() -> tuple[Needle, ...]:
    return _hash_needles() + canaries.snapshot()


def _found(body: bytes, needles: Iterable[Needle]) -> str | None:
    for needle in needles:
        if needle.pattern in body:
            return needle.kind
    return None


def _leak(request, response, kind: str) -> CanaryLeak:
    message = LEAK.format(method=request.method, path=request.path, status=response.status_code, kind=kind)
    _hits.append(message)
    return CanaryLeak(message)


def _scanned(chunks: Iterator[bytes], needles: tuple[Needle, ...], fail: Callable[[str], CanaryLeak]):
    """The chunks as they are read, each searched together with the end of the one before it."""
    overlap = max(len(needle.pattern) for needle in needles) - 1
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if kind := _found(window, needles):
            raise fail(kind)
        tail = window[-overlap:]
        yield chunk


async def _ascanned(chunks: AsyncIterator[bytes], needles: tuple[Needle, ...], fail: Callable[[str], CanaryLeak]):
    overlap = max(len(needle.pattern) for needle in needles) - 1
    tail = b""
    async for chunk in chunks:
        window = tail + chunk
        if kind := _found(window, needles):
            raise fail(kind)
        tail = window[-overlap:]
        yield chunk


def _check(request, response, needles: tuple[Needle, ...]):
    started = time.perf_counter()
    try:
        if getattr(response, "streaming", False):
            _stats["streams"] += 1

            def fail(kind: str) -> CanaryLeak:
                return _leak(request, response, kind)

            scan = _ascanned if response.is_async else _scanned
            response.streaming_content = scan(response.streaming_content, needles, fail)
            return response
        body = response.content
        _stats["responses"] += 1
        _stats["bytes"] += len(body)
        if kind := _found(body, needles):
            raise _leak(request, response, kind)
        return response
    finally:
        _stats["seconds"] += time.perf_counter() - started


original_get_response = BaseHandler.get_response
original_get_response_async = BaseHandler.get_response_async


def get_response(self, request):
    needles = _needles()
    token = _in_request.set(True)
    try:
        response = original_get_response(self, request)
    finally:
        _in_request.reset(token)
    canaries.answered()
    return _check(request, response, needles)


async def get_response_async(self, request):
    needles = _needles()
    token = _in_request.set(True)
    try:
        response = await original_get_response_async(self, request)
    finally:
        _in_request.reset(token)
    canaries.answered()
    return _check(request, response, needles)


# --- learning the secrets -------------------------------------------------------------------------------


def _encrypt(value: dict) -> bytes:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in NOT_SECRET_KEYS:
                canaries.register(item, f"an encrypted secret (a {key!r} given to workflows.credentials.encrypt)")
    return original_encrypt(value)


def _api_key_create(**kwargs):
    key, raw_key = original_api_key_create(**kwargs)
    canaries.register(raw_key, "a raw API key")
    return key, raw_key


def _webhook_create(**kwargs):
    hook, token = original_webhook_create(**kwargs)
    canaries.register(token, "a webhook token")
    return hook, token


def _webhook_rotate(**kwargs):
    token = original_webhook_rotate(**kwargs)
    canaries.register(token, "a webhook token")
    return token


def _make_password(*args, **kwargs):
    hashed = original_make_password(*args, **kwargs)
    # A hash with a known algorithm prefix is found by the prefix; the rest (unusable passwords "!…",
    # other hashers) are searched for themselves.
    if not any(hashed.startswith(needle.pattern.decode()) for needle in _hash_needles()):
        canaries.register(hashed, "a user's password hash")
    return hashed


original_encrypt = credentials.encrypt
original_api_key_create = api_keys.api_key_create
original_webhook_create = webhooks.webhook_create
original_webhook_rotate = webhooks.webhook_rotate
original_make_password = hashers.make_password

WRAPPERS = {
    original_encrypt: _encrypt,
    original_api_key_create: _api_key_create,
    original_webhook_create: _webhook_create,
    original_webhook_rotate: _webhook_rotate,
    original_make_password: _make_password,
}
_rebound: list[tuple[ModuleType, str, object]] = []


def _rebind(replacements: dict) -> list[tuple[ModuleType, str, object]]:
    """Replace each function wherever a loaded module holds it (`from x import f` made copies of the name)."""
    by_id = {id(original): (original, replacement) for original, replacement in replacements.items()}
    done = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or module is sys.modules[__name__]:
            continue
        for name, value in list(namespace.items()):
            # By identity: hashing arbitrary module attributes (lazy objects) could run code.
            if id(value) in by_id and by_id[id(value)][0] is value:
                setattr(module, name, by_id[id(value)][1])
                done.append((module, name, value))
    return done


# --- hooks -----------------------------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    BaseHandler.get_response = get_response
    BaseHandler.get_response_async = get_response_async
    _rebound.extend(_rebind(WRAPPERS))
    # The learning wrappers must sit where the product calls them, or the search learns nothing.
    assert credentials.encrypt is _encrypt and webhooks.encrypt is _encrypt
    assert api_keys.api_key_create is _api_key_create and hashers.make_password is _make_password


def pytest_unconfigure(config: pytest.Config) -> None:
    BaseHandler.get_response = original_get_response
    BaseHandler.get_response_async = original_get_response_async
    for module, name, value in _rebound:
        setattr(module, name, value)
    _rebound.clear()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _hits.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if _hits:
        raise CanaryLeak("; ".join(take_hits()))
    return result


def pytest_terminal_summary(terminalreporter) -> None:
    if _stats["responses"] or _stats["streams"]:
        terminalreporter.write_line(
            f"canary search: {_stats['responses']} responses ({_stats['bytes'] / 1e6:.1f} MB) and "
            f"{_stats['streams']} streams searched in {_stats['seconds']:.2f} s for "
            f"{len(canaries.snapshot())} spellings of {canaries.searched()} secrets"
        )
