"""Upkeep of a running warehouse that knows no Dagster: retiring old candles after checking
their aggregates (`retention`), exporting them to Parquet or Feather files (`export`), and
delivering alerts to a webhook (`alerts`). The maintenance assets and the alert sensor call them.
"""
