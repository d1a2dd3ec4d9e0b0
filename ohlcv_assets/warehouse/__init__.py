"""The warehouse: candles and derived tables in PostgreSQL (production) or SQLite (default)."""
