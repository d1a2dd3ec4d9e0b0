"""Requests that leave from one local address: a worker host with several addresses (or several
workers on one host, as in the tests on 127.0.0.2 and 127.0.0.3) uses each as its own egress IP,
and venues, which count weight per IP, see them apart. The same adapter is where a venue's
rate-limit holds are kept: the last check before a request is written to the socket, and the
first look at each answer's status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter


class SendGate(Protocol):
    def before_send(self) -> None:
        """Called just before a request is written; raises to keep it from being sent."""

    def on_answer(self, status: int, headers: Mapping[str, str]) -> None:
        """Called as soon as an answer's status line and headers are read, before its body."""


class EgressAdapter(HTTPAdapter):
    def __init__(self, address: str | None = None, gate: SendGate | None = None, **kwargs):
        self._address, self._gate = address, gate
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._address:
            kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)

    def send(self, request, *args, **kwargs):
        if self._gate is not None:
            self._gate.before_send()
        response = super().send(request, *args, **kwargs)
        if self._gate is not None:
            self._gate.on_answer(response.status_code, response.headers)
        return response


def bind_session(session: requests.Session, address: str | None, gate: SendGate | None = None) -> requests.Session:
    """Makes every connection of ``session`` leave from ``address`` (None: unchanged), and every
    request pass ``gate`` (None: none)."""
    if address or gate is not None:
        adapter = EgressAdapter(address, gate)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def budget_key(venue: str, address: str | None) -> str:
    """The shared rate budget's key: one per venue and egress address."""
    return venue if not address else f"{venue}@{address}"


def apart_budget_key(key: str, name: str) -> str:
    """The key of a budget a venue keeps apart (``name``: ``open_interest``) beside the budget
    keyed ``key`` (``budget_key``): ``<venue>:<name>[@<address>]``, never read as an address."""
    venue, at, address = key.partition("@")
    return f"{venue}:{name}{at}{address}"


def parse_apart_budget_key(key: str) -> tuple[str, str, str | None] | None:
    """(venue, name, address) of an ``apart_budget_key``; None for any other key."""
    head, _, address = key.partition("@")
    venue, colon, name = head.partition(":")
    if not colon or not venue or not name.isidentifier() or " " in key:
        return None
    return venue, name, address or None
