"""Errors that no retry can heal. No Dagster here, and nothing of ours is imported: any module may raise them.

A ``HopelessError`` is a mistake in the setup or a refusal by a venue (a warehouse URL with an
unknown scheme, nothing listening at the warehouse or the venue when a run starts, a universe
error, credentials the venue refuses): retrying only delays the message. A run fails at once, on
its first attempt (no step retries, no run retries), with the message as its cause, and every
command prints it as one line (``cli.one_line_errors``). Failures that can heal (5xx, timeouts,
429, a warehouse that goes away mid-run) are not hopeless and keep their retries.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class HopelessError(Exception):
    """An error a retry cannot heal; its message names the cause and what to change."""


class ConfigurationError(HopelessError, ValueError):
    """A setting that cannot work (a path that does not exist, a bad warehouse URL, nothing listening
    at it at start-up): the message names the setting, the value as given and, for a path, where it
    was looked for."""


class AuthenticationFailed(HopelessError):
    """The venue refused the credentials or the plan (HTTP 401/403, an invalid key, data not
    entitled). Never evidence that a venue stopped listing an instrument."""

    def __init__(self, venue: str, message: str):
        super().__init__(f"{venue}: authentication failed: {message}")
        self.venue, self.detail = venue, message


class VenueUnreachable(HopelessError):
    """Nothing answers at the venue's URL at a run's first contact with it (connection refused)."""

    def __init__(self, venue: str, url: str):
        super().__init__(f"{venue}: no venue answers at {url} (connection refused)")
        self.venue, self.url = venue, url


def connection_refused(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps: ccxt, requests, urllib3, psycopg) is a refused TCP connection."""
    seen: set[int] = set()
    todo: list[object] = [err]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None), getattr(current, "orig", None),
                 *current.args]
    return False


def public_url(url: str) -> str:
    """A URL as it may be shown: no user, password or query (where keys travel)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
