"""Table definitions (SQLAlchemy Core). Changes here need an Alembic migration in migrations/versions.

Prices and volumes are float64 (DOUBLE PRECISION): every consumer (pandas, numpy, TA-Lib)
computes in float64, and a decimal string of up to 15 significant digits (all Binance prices
and quantities below 10 million at eight decimals) parses to the float whose shortest repr is
that same number, so the exchange's value round-trips exactly.
"""

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table

from ohlcv_assets.core.feature_params import FEATURE_PARAMS

metadata = MetaData()


def _candle_key() -> list[Column]:
    """(exchange, symbol, timeframe, open_time): the key of every per-candle table."""
    return [
        Column("exchange", String(64), primary_key=True),
        Column("symbol", String(64), primary_key=True),
        Column("timeframe", String(8), primary_key=True),
        Column("open_time", BigInteger, primary_key=True, comment="epoch milliseconds, UTC"),
    ]


candles = Table(
    "candles",
    metadata,
    *_candle_key(),
    Column("open", Float(53), nullable=False),
    Column("high", Float(53), nullable=False),
    Column("low", Float(53), nullable=False),
    Column("close", Float(53), nullable=False),
    Column("volume", Float(53), nullable=False),
    Column("fetched_at", BigInteger, nullable=False, comment="epoch milliseconds when last written"),
    # What venues give beyond OHLCV; NULL where a venue does not (see candle_frame.EXTRA_COLUMNS).
    Column("quote_volume", Float(53), nullable=True, comment="volume in the quote currency (Binance)"),
    Column("trades", BigInteger, nullable=True, comment="number of trades (Binance, Kraken, Polygon)"),
    Column("taker_buy_volume", Float(53), nullable=True, comment="base volume bought by takers (Binance)"),
    Column("taker_buy_quote_volume", Float(53), nullable=True, comment="quote volume bought by takers (Binance)"),
    Column("vwap", Float(53), nullable=True, comment="volume-weighted average price (Kraken, Polygon)"),
)


# Candles built in the warehouse from a finer stored interval (``warehouse/derived.py``): apart from
# ``candles``, so that a venue's own 4h and a 4h rolled up from its 1m never stand in for each other.
derived_candles = Table(
    "derived_candles",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("timeframe", String(8), primary_key=True, comment="the derived interval, e.g. 4h"),
    Column("source_timeframe", String(8), primary_key=True, comment="the stored interval it is rolled up from, e.g. 1m"),
    Column("open_time", BigInteger, primary_key=True, comment="epoch milliseconds, UTC"),
    Column("open", Float(53), nullable=False),
    Column("high", Float(53), nullable=False),
    Column("low", Float(53), nullable=False),
    Column("close", Float(53), nullable=False),
    Column("volume", Float(53), nullable=False),
    Column("quote_volume", Float(53), nullable=True),
    Column("trades", BigInteger, nullable=True),
    Column("taker_buy_volume", Float(53), nullable=True),
    Column("taker_buy_quote_volume", Float(53), nullable=True),
    Column("vwap", Float(53), nullable=True, comment="volume-weighted over the source candles, where every one has a vwap"),
    Column("source_candles", BigInteger, nullable=False, comment="source candles rolled up (all that exist in the bucket)"),
    Column("derived_at", BigInteger, nullable=False, comment="epoch milliseconds when last derived"),
)

def _feature_column(name: str) -> Column:
    if name == "gap_candles":
        return Column(name, BigInteger, nullable=False, comment="grid candles missing just before this one")
    if name == "warmed_up":
        return Column(name, Boolean, nullable=False, comment="at least warmup_candles stored candles precede it")
    return Column(name, Float(53), nullable=True)


candle_features = Table(
    "candle_features",
    metadata,
    *_candle_key(),
    *(_feature_column(name) for name in FEATURE_PARAMS.columns()),
    Column("fetched_at", BigInteger, nullable=False, comment="epoch milliseconds when last written"),
)


DETECTED, BACKFILL_REQUESTED, FILLED, SUPERSEDED = "detected", "backfill_requested", "filled", "superseded"
CONFIRMED_EMPTY, UNFILLABLE = "confirmed_empty", "unfillable"
GAP_OPEN_STATUSES = (DETECTED, BACKFILL_REQUESTED)  # candles still expected to come
GAP_CLOSED_STATUSES = (FILLED, SUPERSEDED)  # the record no longer describes missing candles
GAP_EXPLAINED_STATUSES = (DETECTED, BACKFILL_REQUESTED, CONFIRMED_EMPTY, UNFILLABLE)  # missing, and known why

gaps = Table(
    "gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("start_ms", BigInteger, nullable=False, comment="open time of the first missing candle"),
    Column("end_ms", BigInteger, nullable=False, comment="exclusive end: open time after the last missing candle"),
    Column("candles", BigInteger, nullable=False),
    Column("reason", String(32), nullable=False, comment="fillable, exchange_downtime, before_listing, beyond_history"),
    Column("status", String(32), nullable=False,
           comment="detected, backfill_requested, filled, superseded, confirmed_empty, unfillable"),
    Column("request_id", String(64), nullable=True, comment="tag ohlcv/gap_request of the backfill asked for it"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=True),
    Column("detected_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("note", String(500), nullable=False, default=""),
    Column("archive_signature", String(64), nullable=True,
           comment="fingerprint of the venue's archive setting when last tried; '' without one"),
    Index("ix_gaps_instrument", "exchange", "symbol", "timeframe", "status"),
)

rate_budget = Table(
    "rate_budget",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("tat", Float(53), nullable=False,
           comment="GCRA theoretical arrival time (epoch seconds) of the exchange's shared request budget"),
)

venue_counters = Table(
    "venue_counters",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("egress", String(64), primary_key=True, comment="the egress address requests left from; '' for the system's choice"),
    Column("requests", BigInteger, nullable=False, comment="requests sent, retries included"),
    Column("retries", BigInteger, nullable=False),
    Column("http_429", BigInteger, nullable=False, comment="rate-limit answers (HTTP 429 or the venue's own rate-limit error)"),
    Column("http_418", BigInteger, nullable=False, comment="bans (HTTP 418)"),
    Column("http_5xx", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False, comment="requests that got no usable answer (any failure above, timeouts, bad bodies)"),
    Column("waited_seconds", Float(53), nullable=False, comment="time spent waiting before retries (backoff and Retry-After)"),
    Column("candles_written", BigInteger, nullable=False, comment="candles merged into the warehouse (REST and archive)"),
    Column("updated_ms", BigInteger, nullable=False),
    comment="Counters of the ingest path per venue and egress address, added at every batch commit: they survive restarts",
)

retired_ranges = Table(
    "retired_ranges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("start_ms", BigInteger, nullable=False, comment="first open time of the dropped span"),
    Column("end_ms", BigInteger, nullable=False, comment="exclusive end of the dropped span"),
    Column("candles", BigInteger, nullable=False, comment="candles of this instrument dropped"),
    Column("retired_ms", BigInteger, nullable=False),
    Column("detail", String(500), nullable=False, comment="partition dropped (PostgreSQL) or rows deleted (SQLite); aggregates checked"),
    Index("ix_retired_instrument", "exchange", "symbol", "timeframe"),
)

exported_files = Table(
    "exported_files",
    metadata,
    Column("format", String(16), primary_key=True),
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("timeframe", String(8), primary_key=True),
    Column("month", String(7), primary_key=True, comment="YYYY-MM, or '' for a whole-history file"),
    Column("path", String(1000), nullable=False, comment="relative to the export directory"),
    Column("rows", BigInteger, nullable=False),
    Column("max_fetched_at", BigInteger, nullable=False, comment="with rows, tells whether the candles changed since"),
    Column("written_ms", BigInteger, nullable=False),
)

delistings = Table(
    "delistings",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("delisted_ms", BigInteger, nullable=False, comment="no candle opens from then on (the end of the last one served)"),
    Column("served", Boolean, nullable=False, comment="the venue still serves its history (listed, inactive); false: gone from its markets"),
    Column("detected_ms", BigInteger, nullable=False),
)

day_sources = Table(
    "day_sources",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("timeframe", String(8), primary_key=True),
    Column("day", String(10), primary_key=True, comment="UTC day, YYYY-MM-DD"),
    Column("source", String(16), nullable=False, comment="archive or rest: where the day's candles were last written from; "
                                                         "archive+rest: a mixed day (see kept_from)"),
    Column("file", String(500), nullable=True, comment="archive: the file's path below the archive's root"),
    Column("sha256", String(64), nullable=True, comment="archive: the file's sha256"),
    Column("recorded_ms", BigInteger, nullable=False),
    Column("candles", BigInteger, nullable=True, comment="the day's candles holding the values of source (file); NULL: before 0011"),
    Column("kept_from", String(500), nullable=True,
           comment="a mixed day: rest, or an archive file, whose stored values some candles kept (the file disagreed)"),
    Column("kept_candles", BigInteger, nullable=False, server_default="0", comment="a mixed day: candles holding kept_from's values"),
)

source_files = Table(
    "source_files",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("file", String(500), primary_key=True, comment="path below the archive's root"),
    Column("sha256", String(64), nullable=False, comment="of the version last ingested"),
    Column("symbol", String(64), primary_key=True, comment="one record per instrument and interval the file served"),
    Column("timeframe", String(8), primary_key=True),
    Column("candles", BigInteger, nullable=False, comment="candles of the asked days it held when last ingested"),
    Column("revisions", Integer, nullable=False, comment="times a version with another sha256 was ingested after the first"),
    Column("first_ingested_ms", BigInteger, nullable=False),
    Column("ingested_ms", BigInteger, nullable=False),
)

source_disagreements = Table(
    "source_disagreements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("day", String(10), nullable=False),
    Column("source", String(500), nullable=False, comment="the incoming source: an archive file"),
    Column("other", String(500), nullable=False, comment="what was stored: rest, or an archive file"),
    Column("candles", BigInteger, nullable=False, comment="candles whose values differ"),
    Column("max_diff_pct", Float(53), nullable=False, comment="largest relative difference of a value, in percent"),
    Column("first_open_time", BigInteger, nullable=False, comment="the first differing candle"),
    Column("kept", String(16), nullable=False, comment="archive or stored: whose values the warehouse holds (the rule)"),
    Column("detected_ms", BigInteger, nullable=False),
    Index("ix_disagreements_instrument", "exchange", "symbol", "timeframe", "day"),
)

candle_days = Table(
    "candle_days",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("timeframe", String(8), primary_key=True),
    Column("day_ms", BigInteger, primary_key=True, comment="the UTC day's start, epoch milliseconds"),
    Column("candles", BigInteger, nullable=False, comment="candles stored that open in the day"),
    Column("first_open", BigInteger, nullable=False, comment="open time of the day's first stored candle"),
    Column("last_open", BigInteger, nullable=False, comment="open time of the day's last stored candle"),
    comment="Per instrument, interval and UTC day, the candles stored: kept by every write and delete of candles "
            "(warehouse/candle_days.py), so counts never need a scan of the candles",
)

funding_rates = Table(
    "funding_rates",
    metadata,
    *_candle_key(),  # timeframe "funding"; open_time the settlement's nominal time (on the hour), as candles are keyed
    Column("raw_time", BigInteger, nullable=False, comment="the venue's own settlement time (Binance: a few ms after the hour)"),
    Column("rate", Float(53), nullable=False, comment="the funding rate paid at the settlement (signed)"),
    Column("mark_price", Float(53), nullable=True, comment="the mark price of the settlement, where the venue gives it"),
    Column("fetched_at", BigInteger, nullable=False),
    comment="A perpetual's funding rate settlements, one row each, keyed by the nominal settlement time (warehouse/funding.py)",
)

open_interest = Table(
    "open_interest",
    metadata,
    *_candle_key(),  # timeframe "oi_5m"; open_time the sample's time on the 5-minute grid
    Column("amount", Float(53), nullable=True, comment="open interest in contracts (the base asset); NULL where not given"),
    Column("value", Float(53), nullable=True, comment="open interest in the quote currency; NULL where not given"),
    Column("fetched_at", BigInteger, nullable=False),
    comment="A perpetual's open interest every 5 minutes (warehouse/open_interest.py)",
)
