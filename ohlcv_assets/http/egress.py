"""Requests that leave from one local address: a worker host with several addresses (or several
workers on one host, as in the tests on 127.0.0.2 and 127.0.0.3) uses each as its own egress IP,
and venues, which count weight per IP, see them apart."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


class SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str, **kwargs):
        self._address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def bind_session(session: requests.Session, address: str | None) -> requests.Session:
    """Makes every connection of ``session`` leave from ``address`` (None: unchanged)."""
    if address:
        adapter = SourceAddressAdapter(address)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def budget_key(venue: str, address: str | None) -> str:
    """The shared rate budget's key: one per venue and egress address."""
    return venue if not address else f"{venue}@{address}"
