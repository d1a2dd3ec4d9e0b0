"""ohlcv_assets: OHLCV candles from exchanges as partitioned Dagster assets.

The packages, lowest first (each imports only those before it): ``candle_frame`` (the frame of
candles every part passes around) and ``venues`` (each venue's facts),
``core`` (the shared vocabulary: universe, settings, intervals, sessions, names), ``http`` (egress
and backoff), ``warehouse`` (the database), ``exchange`` and ``archive`` (REST sources and bulk
archive files), ``quality``, ``ingest``, ``features`` and ``ops`` (the domain, no Dagster), ``defs``
(the Dagster layer) with ``definitions``, and ``cli``; ``simulator`` is the offline venue the demo
and the tests start.

``load_candles`` (and ``load_funding``, ``load_open_interest``: a perpetual's funding settlements and
open interest) is the read API (see ``ohlcv_assets.warehouse.read``); it is imported lazily so that
``import ohlcv_assets`` stays cheap.
"""


def __getattr__(name: str):
    if name in ("load_candles", "load_funding", "load_open_interest"):
        from ohlcv_assets.warehouse import read

        return getattr(read, name)
    raise AttributeError(name)
