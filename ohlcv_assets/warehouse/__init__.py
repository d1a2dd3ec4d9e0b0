"""The warehouse: candles and derived tables in PostgreSQL (production) or SQLite (default), and
the only package that writes SQL or imports SQLAlchemy (a test holds every other module to it).
``store.Warehouse`` reads and merges candles; ``dialect`` holds what differs between the two
databases (chosen once per warehouse), ``engine`` the migrations, ``merge`` which rows are new or
revised, ``pg_copy`` PostgreSQL's binary COPY, ``urls`` the URLs shown and resolved. Each table
family has its module: ``candle_days`` (candles stored per day, so counts never scan the candles),
``provenance`` (where each day's candles came from), ``gap_records``, ``delistings``,
``venue_counters``; and each reader its queries: ``summaries`` (status and metrics), ``exports``,
``retirement`` (retention). ``schema`` defines the tables, ``migrations/`` changes them."""
