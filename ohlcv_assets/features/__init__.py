"""Features derived from stored candles: the pure computation (`compute`) and its run over
the warehouse, day by day, into the `candle_features` table (`derive`). Knows no Dagster.
"""
