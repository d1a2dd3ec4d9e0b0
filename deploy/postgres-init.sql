-- Run once by the postgres image on a new data directory. The roles and databases are made (and
-- kept up to date) by the `db-setup` service (ohlcv-db-setup); here only: no role but the
-- superuser may connect to the maintenance database.
REVOKE ALL ON DATABASE postgres FROM PUBLIC;
