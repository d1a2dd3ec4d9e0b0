"""Merging rows into a per-candle table: which incoming rows are new, which revise stored values
(and by how much), and the columns a merge compares. Dialect-neutral: how the changed rows reach
the table is the dialect's (``dialect.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import sqlalchemy as sa

KEY = ["exchange", "symbol", "timeframe", "open_time"]
_PANDAS_TYPES = {sa.BigInteger: "int64", sa.Float: "float64", sa.Boolean: "bool", sa.String: "object"}


@dataclasses.dataclass(frozen=True)
class MergeResult:
    inserted: int
    revised: int
    unchanged: int
    max_revision: float = 0.0  # largest relative change of a revised value


@dataclasses.dataclass(frozen=True)
class RowChanges:
    """Per incoming row: new, revised (stored with other values) and by how much (relative)."""

    is_new: np.ndarray
    is_revised: np.ndarray
    revision: np.ndarray

    @property
    def changed(self) -> np.ndarray:
        return self.is_new | self.is_revised

    def result(self, rows: np.ndarray | slice = slice(None)) -> MergeResult:
        new, revised = self.is_new[rows], self.is_revised[rows]
        largest = float(self.revision[rows][revised].max()) if revised.any() else 0.0
        return MergeResult(inserted=int(new.sum()), revised=int(revised.sum()),
                           unchanged=int((~new & ~revised).sum()), max_revision=largest)


def row_changes(existing: pd.DataFrame, incoming: pd.DataFrame, value_columns: list[str]) -> RowChanges:
    """Compares incoming rows with the stored ones of the same open_time (NaN equals NaN)."""
    if existing.empty:
        nothing = np.zeros(len(incoming), dtype=bool)
        return RowChanges(is_new=~nothing, is_revised=nothing, revision=np.zeros(len(incoming)))
    merged = incoming.merge(existing, on="open_time", how="left", suffixes=("", "_stored"), indicator=True)
    is_new = (merged["_merge"] == "left_only").to_numpy()
    differs = np.zeros(len(merged), dtype=bool)
    revision = np.zeros(len(merged))
    for col in value_columns:
        new, old = merged[col].to_numpy(), merged[f"{col}_stored"].to_numpy()
        same = new == old
        if new.dtype.kind == "f":
            same |= pd.isna(new) & pd.isna(old)
            comparable = ~same & ~is_new & (old != 0) & ~pd.isna(old) & ~pd.isna(new)
            with np.errstate(divide="ignore", invalid="ignore"):
                revision = np.where(comparable, np.maximum(revision, np.abs(new / old - 1)), revision)
        differs |= ~same
    return RowChanges(is_new=is_new, is_revised=differs & ~is_new, revision=revision)


def value_columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if c.name not in (*KEY, "fetched_at")]




def upsert_set(table: sa.Table, excluded) -> dict:
    """What an upsert overwrites on a key already stored: the values and fetched_at."""
    return {c: excluded[c] for c in [*value_columns(table), "fetched_at"]}


def pandas_dtype(column: sa.Column) -> str:
    """A column's dtype in a frame: a nullable integer is float64 (NaN for NULL)."""
    if column.nullable and type(column.type) is sa.BigInteger:
        return "float64"
    return _PANDAS_TYPES[type(column.type)]
