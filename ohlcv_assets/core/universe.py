"""The universe: which exchanges, instruments, intervals and start dates exist.

Loaded from one YAML file (``OHLCV_UNIVERSE``, default: the bundled demo universe) and validated
completely at load time, so that a typo fails before anything runs, with a message naming the
entry, rather than as a half-finished backfill.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ohlcv_assets.core.intervals import DERIVED_ONLY, derived_interval_ms, interval_ms, resolve_day
from ohlcv_assets.core.errors import ConfigurationError
from ohlcv_assets.core.sessions import REGULAR, Sessions, sessions_for
from ohlcv_assets.core.settings import UNIVERSE_ENV
from ohlcv_assets.venues import GENERIC_CCXT, PROFILES, VenueProfile, known_venues, profile_for
from ohlcv_assets.venues.series import EVENT_SERIES, PRICE_SERIES, ccxt_offers, parse_series_code, series_code

_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class UniverseError(ConfigurationError):
    """The universe file is invalid; the message names every offending entry."""


class ArchiveConfig(BaseModel):
    """Where a venue's bulk archive lives and how it is routed and reconciled (see ``archive``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | list[str] = Field(description="Binance: the archive's root (data.binance.vision's layout below it); Kraken: "
                                             "the OHLCVT zip (a URL or a local path), a directory holding zips, or a list of "
                                             "them (the full zip and the quarterly ones published after it)")
    market: Literal["spot", "futures/um", "futures/cm"] | None = Field(
        default=None, description="Binance: which archive tree; left out, the venue's own (binance: spot, binanceusdm: "
                                  "futures/um), and no other is accepted")
    daily_lag_days: int = Field(default=1, ge=0, description="a daily file is asked for once its day ended this many days ago")
    monthly_lag_days: int = Field(default=3, ge=0, description="a monthly file is asked for once its month ended this many days ago")
    prefer_archive_after_days: int = Field(
        default=7, ge=0, description="where the archive and the stored (API) candles disagree, days older than this keep "
                                     "the archive's values, younger ones the API's; either way the disagreement is recorded")
    attempts: int = Field(default=3, ge=1, description="downloads of a file whose checksum, zip or CSV fails before it is a hole")

    def signature(self) -> str:
        """A fingerprint of the whole setting: a gap given up under one is tried again under another."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class ExchangeConfig(BaseModel):
    """One venue of the universe. Limits left out come from the venue's profile (``venues``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    venue: str = Field(description=f"venue profile: {known_venues()}")
    ccxt_id: str | None = Field(default=None, description="ccxt exchange id, e.g. 'binance' (ccxt venues)")
    api_url: str | None = Field(default=None, description="override of the public REST API base URL")
    api_urls: dict[str, str] = Field(default_factory=dict, description="ccxt venues: overrides of single entries of ccxt's "
                                     "urls['api'] by key (e.g. {fapiPublic: http://host/fapi/v1} for a generic ccxt entry "
                                     "of a venue whose API has several hosts), applied after api_url")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the API key (never the key)")
    timeout_seconds: float = Field(default=10.0, gt=0)
    weight_limit: int = Field(gt=0, description="the exchange's request-weight budget per window (per IP), shared by all runs")
    weight_window_seconds: float = Field(gt=0, description="the window the exchange counts weight over (Binance: 60 s)")
    budget_use: float = Field(default=0.9, gt=0, le=1, description="share of the budget used at the steady rate")
    budget_burst: float = Field(default=0.05, ge=0, le=0.5, description="share of the budget that may go in a burst above the steady rate")
    candles_weight: int = Field(gt=0, description="weight of one candles request (Binance klines, limit 1000: 2)")
    open_interest_limit: int | None = Field(default=None, gt=0, description="open interest requests per window (per IP), "
                                            "a budget of their own apart from request weight (Binance USDⓈ-M: 1000); None: "
                                            "each weighs 1 on the request-weight budget")
    open_interest_window_seconds: float | None = Field(default=None, gt=0, description="the window open_interest_limit "
                                                       "counts over (Binance USDⓈ-M: 300 s)")
    markets_weight: int = Field(gt=0, description="weight of loading the markets (Binance exchangeInfo: 20)")
    used_weight_header: str | None = Field(description="response header with the weight the exchange has counted this minute")
    fetch_concurrency: int = Field(default=4, ge=1, le=32, description="candle requests in flight at once per run")
    max_attempts: int = Field(default=6, ge=1, description="tries per request window before the run fails")
    retry_base_seconds: float = Field(default=0.5, gt=0, description="first backoff delay; doubles per attempt")
    settlement_minutes: int = Field(default=60, ge=0, description="how long after a day ends its candles are re-fetched for revisions")
    history_candles: int | None = Field(gt=0, description="how far back the API serves candles (e.g. Kraken: 720); None: from listing")
    downtime_min_minutes: int = Field(gt=0, description="venues that omit no-trade intervals: an empty run this long is downtime")
    archive: ArchiveConfig | None = Field(default=None, description="the venue's bulk archive, for deep history (Binance, Kraken)")
    options: dict = Field(default_factory=dict, description="ccxt options passed to the exchange; Polygon: "
                                                             "{adjusted: false} for bars as traded")

    @model_validator(mode="before")
    @classmethod
    def _venue_defaults(cls, raw):
        """Fills what the entry leaves out from its venue's profile."""
        if not isinstance(raw, dict):
            return raw
        try:
            profile = profile_for(raw.get("venue"), raw.get("ccxt_id"))
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        defaults = {"venue": profile.name, "weight_limit": profile.weight_limit, "weight_window_seconds": profile.weight_window_seconds,
                    "candles_weight": profile.candles_weight, "markets_weight": profile.markets_weight,
                    "used_weight_header": profile.used_weight_header, "history_candles": profile.history_candles,
                    "downtime_min_minutes": profile.downtime_min_minutes}
        if profile.open_interest_budget is not None:
            defaults["open_interest_limit"], defaults["open_interest_window_seconds"] = profile.open_interest_budget
        if profile.source == "ccxt" and profile.name != GENERIC_CCXT.name:
            defaults["ccxt_id"] = profile.ccxt_class
        return {**defaults, **raw}

    @model_validator(mode="after")
    def _budget_fits(self) -> "ExchangeConfig":
        if self.budget_use + self.budget_burst > 1:
            raise ValueError(f"budget_use + budget_burst = {self.budget_use + self.budget_burst:g} would exceed the exchange's budget")
        if (self.open_interest_limit is None) != (self.open_interest_window_seconds is None):
            raise ValueError("open_interest_limit and open_interest_window_seconds go together")
        if self.profile.source == "ccxt" and not self.ccxt_id:
            raise ValueError(f"venue {self.venue!r} needs ccxt_id (the ccxt exchange id)")
        if self.profile.source != "ccxt" and self.ccxt_id:
            raise ValueError(f"venue {self.venue!r} is not a ccxt exchange: remove ccxt_id")
        if self.profile.source != "ccxt" and self.api_urls:
            raise ValueError(f"api_urls: venue {self.venue!r} is not a ccxt exchange (set api_url)")
        if self.archive is not None and self.profile.archive_format is None:
            raise ValueError(f"venue {self.venue!r} has no bulk archive we read: remove archive")
        if self.archive is not None and self.archive.market not in (None, self.profile.archive_market):
            raise ValueError(f"archive.market: {self.venue}'s instruments are {self.profile.archive_market} markets "
                             f"(symbols like {self.profile.symbol_example!r}), so its archive is the {self.profile.archive_market!r} "
                             f"tree; {self.archive.market!r} would store another market's candles under their names")
        if self.archive is not None and isinstance(self.archive.url, list):
            if not self.profile.archive_is_files:
                raise ValueError(f"archive.url: {self.venue}'s archive is one root URL, not a list of files")
            if not self.archive.url:
                raise ValueError("archive.url: the list of archive files is empty")
        return self

    @property
    def profile(self) -> VenueProfile:
        return profile_for(self.venue, self.ccxt_id)

    @property
    def page_limit(self) -> int:
        return self.profile.page_limit

    @property
    def sessions(self) -> Sessions:
        """When the venue trades: the expected candles, gaps and freshness follow it."""
        return sessions_for(self.profile.calendar)

    def sessions_of(self, instrument: "Instrument") -> Sessions:
        """When ``instrument`` is expected to trade on this venue: its ``session`` window of the
        venue's calendar (around the clock on a venue without one)."""
        return sessions_for(self.profile.calendar, instrument.session)


class Instrument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exchange: str
    symbol: str = Field(description="ccxt unified symbol, e.g. 'BTC/USDT'")
    intervals: Annotated[tuple[str, ...], Field(min_length=1)]
    start: dt.date
    derived: tuple[tuple[str, str], ...] = Field(
        default=(), description="intervals built in the warehouse from a finer stored one, written as a mapping, e.g. "
                                "{4h: 1m}: the derived interval -> the interval (listed under intervals) it is rolled up from")
    session: Literal["regular", "extended"] = Field(
        default=REGULAR, description="equities: the trading hours whose candles are expected and kept: regular (09:30-16:00 "
                                     "New York) or extended (pre-market and after-hours too, 04:00-20:00); daily bars are "
                                     "one per session either way")
    series: tuple[Literal["mark", "index", "premium", "funding", "open_interest"], ...] = Field(
        default=(), description="perpetual contracts: the series stored beside the trade candles: mark, index and premium "
                                "(premium index) klines at each of the instrument's intervals, funding (the funding "
                                "rate settlements) and open_interest (every 5 minutes); the venue must offer each")

    @field_validator("start", mode="before")
    @classmethod
    def _relative_start(cls, value):
        """``N days ago`` keeps a universe's window moving with the calendar (the demo's does)."""
        return resolve_day(value) if isinstance(value, str) and "ago" in value else value

    @field_validator("intervals")
    @classmethod
    def _interval_grid(cls, intervals: tuple[str, ...]) -> tuple[str, ...]:
        for interval in intervals:
            if interval in DERIVED_ONLY:
                raise ValueError(f"interval {interval!r} is not fetched (a week spans seven day partitions); derive it in the "
                                 f"warehouse from a stored interval: derived: {{{interval}: 1d}}, with 1d in intervals")
            interval_ms(interval)
            if parse_series_code(interval)[0] != "trades":
                raise ValueError(f"{interval!r} is a series code, not an interval: list the interval here and the series "
                                 f"under series")
        if len(set(intervals)) != len(intervals):
            raise ValueError(f"intervals repeat: {list(intervals)}")
        return intervals

    @field_validator("series")
    @classmethod
    def _series_once(cls, series: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(series)) != len(series):
            raise ValueError(f"series repeat: {list(series)}")
        return series

    @property
    def series_codes(self) -> tuple[str, ...]:
        """The codes of its other series (``venues.series.series_code``): ``mark_1h``, ``funding``..."""
        return tuple(series_code(s, i) for s in self.series if s in PRICE_SERIES for i in self.intervals) + \
            tuple(series_code(s) for s in self.series if s not in PRICE_SERIES)

    @field_validator("derived", mode="before")
    @classmethod
    def _derived_mapping(cls, value):
        """Written as a mapping; kept as pairs, so that an instrument stays hashable."""
        if isinstance(value, dict):
            return tuple((str(k), str(v)) for k, v in value.items())
        raise ValueError("expected a mapping of derived interval to the stored interval it is rolled up from, e.g. {4h: 1m}")

    @field_validator("derived")
    @classmethod
    def _derivable(cls, derived: tuple[tuple[str, str], ...], info) -> tuple[tuple[str, str], ...]:
        fetched = info.data.get("intervals") or ()
        for interval, source in derived:
            step, fine = derived_interval_ms(interval), interval_ms(source)
            if source not in fetched:
                raise ValueError(f"{interval} is derived from {source}, which is not stored: add {source} to intervals "
                                 f"(a derived interval is rolled up from fetched candles only)")
            if fine >= step or step % fine:
                raise ValueError(f"{interval} cannot be derived from {source}: the source must be finer and divide it "
                                 f"(e.g. 4h from 1m, 5m, 15m, 30m, 1h or 2h)")
        return derived

    def derived_source(self, interval: str) -> str | None:
        """The stored interval ``interval`` is derived from for this instrument, or None."""
        return dict(self.derived).get(interval)

    @property
    def key(self) -> str:
        """Partition key: readable and free of the characters Dagster keys must avoid."""
        return instrument_key(self.exchange, self.symbol)

    def label(self) -> str:
        return f"{self.exchange} {self.symbol}"


class Retention(BaseModel):
    """How long an interval's candles (and features) are kept; older whole partitions are dropped
    once the coarser intervals that summarise them are stored and agree with them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_days: int = Field(gt=0, description="candles opening this many days before today or later are kept")
    requires: tuple[str, ...] | None = Field(
        default=None, description="coarser intervals that must hold the aggregates before a drop; "
                                  "default: every coarser interval the instrument has; [] drops without aggregates")


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    formats: tuple[Literal["parquet", "freqtrade"], ...] = Field(
        default=("parquet",), description="parquet: one file per instrument, interval and month; "
                                          "freqtrade: <pair>-<timeframe>.feather per instrument and interval (a contract's: "
                                          "futures/<pair>-<timeframe>-<candle type>.feather, with its series)")
    directory: str | None = Field(default=None, description="where files go; default $DAGSTER_HOME/export")


def instrument_key(exchange: str, symbol: str) -> str:
    return f"{exchange}.{symbol.replace('/', '-').replace(':', '_')}"


class Universe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exchanges: dict[str, ExchangeConfig]
    instruments: tuple[Instrument, ...]
    refresh_minutes: int = Field(default=10, ge=1, le=60,
                                 description="how often today's candles of every instrument are re-fetched (divides 60)")
    sensor_seconds: int = Field(default=30, ge=5, le=3600,
                                description="how often the instrument and gap-backfill sensors look; shorter hands work on sooner, each "
                                            "look costs a sensor evaluation; Dagster's sensor daemon looks at most every 5 s. The "
                                            "features automation stays at 30 s: more often only makes more, smaller feature runs")
    retention: dict[str, Retention] = Field(default_factory=dict, description="per interval; intervals not named are kept forever")
    export: ExportConfig = Field(default_factory=ExportConfig)

    @field_validator("refresh_minutes")
    @classmethod
    def _divides_the_hour(cls, minutes: int) -> int:
        if 60 % minutes:
            raise ValueError(f"refresh_minutes must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), not {minutes}")
        return minutes

    @property
    def intervals(self) -> list[str]:
        """Every configured interval, shortest first."""
        return sorted({i for inst in self.instruments for i in inst.intervals}, key=interval_ms)

    def aggregates_required(self, instrument: Instrument | None, interval: str) -> tuple[str, ...]:
        """The coarser intervals whose candles must be stored before ``interval``'s are dropped."""
        declared = self.retention[interval].requires
        if declared is not None:
            return declared
        if instrument is None:
            return ()
        return tuple(i for i in instrument.intervals if interval_ms(i) > interval_ms(interval))

    def sessions_of(self, instrument: Instrument) -> Sessions:
        """When ``instrument`` is expected to trade (its venue's calendar in its session window)."""
        return self.exchanges[instrument.exchange].sessions_of(instrument)

    def instruments_for(self, interval: str) -> list[Instrument]:
        """The instruments of an interval's trade candles, or of a series code (``mark_1h``)."""
        return [inst for inst in self.instruments if interval in inst.intervals or interval in inst.series_codes]

    def candle_series(self) -> list[str]:
        """Everything stored as candles, each a ``candles/<code>`` asset: the trade candles' intervals,
        then the price series' codes (``mark_1h``...)."""
        return self.intervals + [c for c in self.series_codes() if parse_series_code(c)[0] in PRICE_SERIES]

    def series_codes(self) -> list[str]:
        """Every configured code of a perpetual's other series (``mark_1m``, ``funding``), by series then
        interval, shortest first."""
        codes = {c for inst in self.instruments for c in inst.series_codes}

        def order(code: str):
            series, interval = parse_series_code(code)
            return series, interval_ms(interval) if interval else 0

        return sorted(codes, key=order)

    def event_series(self) -> list[str]:
        """The codes of the event series some instrument wants (``funding``)."""
        return [c for c in self.series_codes() if parse_series_code(c)[0] in EVENT_SERIES]

    def open_interest_series(self) -> list[str]:
        """The open interest code (``oi_5m``) if some instrument wants it."""
        return [c for c in self.series_codes() if parse_series_code(c)[0] == "open_interest"]

    def instruments_for_series(self, code: str) -> list[Instrument]:
        """The instruments that want the series of ``code`` (``mark_1h``, ``funding``)."""
        return [inst for inst in self.instruments if code in inst.series_codes]

    def wants(self, instrument: Instrument, code: str) -> bool:
        """Whether the instrument is configured for the interval or series code."""
        return code in instrument.intervals or code in instrument.series_codes

    @property
    def derived_series(self) -> list[tuple[str, str]]:
        """Every (derived interval, source interval) some instrument declares, shortest first."""
        pairs = {pair for inst in self.instruments for pair in inst.derived}
        return sorted(pairs, key=lambda p: (derived_interval_ms(p[0]), interval_ms(p[1])))

    def instruments_deriving(self, interval: str, source: str) -> list[Instrument]:
        return [inst for inst in self.instruments if inst.derived_source(interval) == source]

    def derived_start_date(self, interval: str, source: str) -> dt.date:
        return min(inst.start for inst in self.instruments_deriving(interval, source))

    def instrument(self, key: str) -> Instrument:
        for inst in self.instruments:
            if inst.key == key:
                return inst
        raise KeyError(f"instrument {key!r} is not in the universe (known: {[i.key for i in self.instruments]})")

    def start_date(self, interval: str) -> dt.date:
        return min(inst.start for inst in self.instruments_for(interval))


def expand_env(value, environ: dict[str, str] | None = None):
    """Expands ${VAR} and ${VAR:-default} in every string of a parsed YAML document;
    an unset variable without default is an error."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group("name"), match.group("default")
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise UniverseError(f"universe refers to ${{{name}}}, which is not set and has no default")

    return _ENV_REF.sub(replace, value)


def parse_universe(text: str, source: str = "<universe>", today: dt.date | None = None) -> Universe:
    try:
        raw = expand_env(yaml.safe_load(text))
    except yaml.YAMLError as err:
        raise UniverseError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise UniverseError(f"{source}: expected a mapping with 'exchanges' and 'instruments'")
    try:
        universe = Universe.model_validate(raw)
    except ValidationError as err:
        raise UniverseError(f"{source}: " + "; ".join(_describe(raw, e) for e in err.errors())) from None
    problems = _semantic_problems(universe, today or dt.datetime.now(dt.timezone.utc).date())
    if problems:
        raise UniverseError(f"{source}: " + "; ".join(problems))
    return universe


def _describe(raw: dict, error: dict) -> str:
    loc = list(error["loc"])
    where = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "instruments" and isinstance(loc[1], int):
        try:
            entry = raw["instruments"][loc[1]]
            where = f"instruments[{loc[1]}] ({entry.get('exchange')} {entry.get('symbol')})" + "".join(f".{p}" for p in loc[2:])
        except (IndexError, KeyError, AttributeError, TypeError):
            pass
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error['msg']}"


def _semantic_problems(universe: Universe, today: dt.date, environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    problems = []
    for interval, retention in universe.retention.items():
        try:
            step = interval_ms(interval)
        except ValueError as err:
            problems.append(f"retention.{interval}: {err}")
            continue
        for coarser in retention.requires or ():
            try:
                ok = interval_ms(coarser) > step and interval_ms(coarser) % step == 0
            except ValueError as err:
                problems.append(f"retention.{interval}.requires: {err}")
                continue
            if not ok:
                problems.append(f"retention.{interval}.requires: {coarser!r} is not a coarser multiple of {interval}")
            if retention.keep_days and coarser in universe.retention and universe.retention[coarser].keep_days < retention.keep_days:
                problems.append(f"retention.{interval}.requires: {coarser} is kept for fewer days than {interval}")
    for name, exchange in universe.exchanges.items():
        if exchange.ccxt_id is not None and not is_ccxt_exchange(exchange.ccxt_id):
            problems.append(f"exchanges.{name}: unknown ccxt exchange id {exchange.ccxt_id!r}")
        if exchange.profile.api_key_required:
            if not exchange.api_key_env:
                problems.append(f"exchanges.{name}: {exchange.venue} needs an API key: set api_key_env to the name of the "
                                f"environment variable that holds it")
            elif not environ.get(exchange.api_key_env):
                problems.append(f"exchanges.{name}: the API key variable {exchange.api_key_env} is not set")
    seen: dict[str, int] = {}
    for n, inst in enumerate(universe.instruments):
        where = f"instruments[{n}] ({inst.label()})"
        if inst.key in seen:
            problems.append(f"{where}: duplicate of instruments[{seen[inst.key]}]")
        seen.setdefault(inst.key, n)
        if inst.start > today:
            problems.append(f"{where}: start {inst.start} is in the future")
        exchange = universe.exchanges.get(inst.exchange)
        if exchange is None:
            problems.append(f"{where}: exchange {inst.exchange!r} is not declared under exchanges")
            continue
        form = exchange.profile.check_symbol_form(inst.symbol)
        if form:
            problems.append(f"{where}: {form}")
        if exchange.ccxt_id is not None and not is_ccxt_exchange(exchange.ccxt_id):
            continue
        if inst.session != REGULAR and exchange.profile.calendar is None:
            problems.append(f"{where}: session {inst.session!r}: {exchange.venue} trades around the clock; "
                            f"only venues with exchange sessions (equities) take a session")
        offered = exchange.profile.intervals or exchange_timeframes(exchange.ccxt_id)
        for interval in inst.intervals:
            if offered and interval not in offered:
                finer = [i for i in inst.intervals if i != interval and _divides(i, interval)] or [
                    i for i in offered if _divides(i, interval)]
                hint = "" if not finer else (
                    f"; derive it in the warehouse from a finer stored interval: derived: {{{interval}: {finer[0]}}}"
                    + ("" if finer[0] in inst.intervals else f", with {finer[0]} in intervals"))
                problems.append(f"{where}: interval {interval!r} is not offered by {exchange.venue} "
                                f"(offers: {', '.join(offered)}){hint}")
        problems += [f"{where}: {problem}" for problem in _series_problems(inst, exchange)]
    return problems


def _series_problems(inst: Instrument, exchange: ExchangeConfig) -> list[str]:
    """Why the instrument's series cannot be had from its venue: a symbol that is no contract,
    a series the venue lacks (named, with what says so), an interval it has no price klines at."""
    if not inst.series:
        return []
    if ":" not in inst.symbol:
        return [f"series {', '.join(inst.series)}: series need a perpetual contract symbol (e.g. 'BTC/USDT:USDT'), "
                f"not {inst.symbol!r}"]
    problems = []
    profile = exchange.profile
    name = exchange.ccxt_id if profile.series is None else exchange.venue
    for series in inst.series:
        if profile.series is None:
            has, why = ccxt_offers(exchange.ccxt_id, series)
            if not has:
                problems.append(f"series {series} is not offered by {name} ({why})")
        elif series not in profile.series:
            problems.append(f"series {series} is not offered by {name} (offers: {', '.join(profile.series) or 'none'})")
    if any(s in PRICE_SERIES for s in inst.series) and profile.series_intervals is not None:
        for interval in inst.intervals:
            if interval not in profile.series_intervals:
                problems.append(f"interval {interval!r}: {name} has no price-series klines at it "
                                f"(offers: {', '.join(profile.series_intervals)})")
    return problems


def _divides(fine: str, coarse: str) -> bool:
    """Whether ``fine`` is a finer interval dividing ``coarse`` (ccxt timeframes we cannot store: no)."""
    try:
        step, fine_ms = interval_ms(coarse), interval_ms(fine)
    except ValueError:
        return False
    return fine_ms < step and step % fine_ms == 0


def is_ccxt_exchange(ccxt_id: str) -> bool:
    """Whether ccxt knows the exchange id. The venues we profile are known without importing
    ccxt: every process loads the universe, and ccxt's import (every exchange) costs 0.4 s."""
    if any(profile.ccxt_class == ccxt_id for profile in PROFILES.values()):
        return True
    import ccxt

    return ccxt_id in ccxt.exchanges


@functools.cache
def exchange_timeframes(ccxt_id: str) -> tuple[str, ...]:
    """The intervals an exchange offers, from ccxt's static description (no network)."""
    import ccxt

    return tuple((getattr(ccxt, ccxt_id)().timeframes or {}).keys())


def universe_path() -> Path | None:
    value = os.environ.get(UNIVERSE_ENV)
    return Path(value) if value else None


BUNDLED_UNIVERSE = "demo_universe.yaml"


def universe_in_use(path: str | Path | None = None) -> Path:
    """The absolute path of the universe file a process reads: ``path``, else ``OHLCV_UNIVERSE``,
    else the bundled demo universe (relative paths against the working directory)."""
    chosen = Path(path) if path else universe_path()
    if chosen is None:
        return Path(str(resources.files("ohlcv_assets").joinpath(BUNDLED_UNIVERSE))).resolve()
    return chosen.expanduser().resolve()


_PARSED: dict[tuple, Universe] = {}  # this process's universes, by file (and its state on disk) and environment


def load_universe(path: str | Path | None = None) -> Universe:
    """The universe of ``path`` (None: ``OHLCV_UNIVERSE``, else the bundled demo), read and parsed
    once per process: a later call for the same file, unchanged on disk and under the same
    environment (``${VAR}`` references), gets a copy of that first parse."""
    path = Path(path) if path else universe_path()
    if path is None:
        file, source = universe_in_use(None), BUNDLED_UNIVERSE
    else:
        if not path.exists():
            shown = path if path.is_absolute() else f"{path} (from {Path.cwd()}: {path.resolve()})"
            raise UniverseError(f"universe file {shown} does not exist (set {UNIVERSE_ENV})")
        file, source = path.expanduser().resolve(), str(path)
    stat = file.stat()
    key = (str(file), stat.st_mtime_ns, stat.st_size, hash(frozenset(os.environ.items())))
    if key not in _PARSED:
        _PARSED[key] = parse_universe(file.read_text(), source)
    return _PARSED[key].model_copy(deep=True)
