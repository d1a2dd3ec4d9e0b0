-- The compose PostgreSQL holds Dagster's storage (database "dagster") and the warehouse.
CREATE DATABASE warehouse;
