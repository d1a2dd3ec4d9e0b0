"""The bundled simulated venue: one deterministic market (seeded candles, listings, downtime) served
over HTTP in a venue's protocol, with rate limits and injectable faults, for the demo, the tests and
the benchmarks. ``market`` is the truth; ``server`` speaks the Binance spot protocol ccxt uses."""
