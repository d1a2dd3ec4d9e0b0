"""The Dagster layer, apart from the domain packages (as in create-dagster's `defs/`): the
assets, sensors, schedules and resources that `ohlcv_assets.definitions` assembles, and the
Dagster glue beside them: partitions (`partitions`), every private Dagster import
(`dagster_internals`), the instance's storage (`instance_storage`), and what reads the
Dagster instance for the status page and the Prometheus exporter (`monitoring`, `metrics`).
"""
