"""Is what is stored complete and right: each batch validated before it is written
(`validation`), each stored day checked and scored (`checks`), and the missing candles
found and explained by the gap scan (`gap_scan`). Knows no Dagster.
"""
