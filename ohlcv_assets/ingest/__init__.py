"""Candles from a venue into the warehouse, one instrument and interval at a time: plan the days
and fetch them over REST (`days`), or load them from the venue's bulk archive files
(`archive_path`), write them in batches, and report each day's outcome (`report`).
Knows no Dagster: the candles asset calls `ingest_days`.
"""
