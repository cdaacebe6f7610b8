"""Results rows: a list of dicts that renders as a Markdown table (and a DataFrame with pandas)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["Table"]


class Table(list):
    """Rows as dicts (a list subclass), with a few conveniences for notebooks and reports."""

    @classmethod
    def from_rows(cls, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> "Table":
        """A table from a header and rows given as sequences in the header's order.

        >>> print(Table.from_rows(["model", "TAR"], [["arcface", "98%"]]).to_markdown())
        | model | TAR |
        |---|---|
        | arcface | 98% |
        """
        header = list(header)
        if len(set(header)) != len(header):
            raise ValueError(f"column names must differ: {header}")
        bad = [r for r in rows if len(r) != len(header)]
        if bad:
            raise ValueError(f"a row has {len(bad[0])} cells for {len(header)} columns: {list(bad[0])}")
        return cls(dict(zip(header, r)) for r in rows)

    @property
    def columns(self) -> list[str]:
        cols: dict[str, None] = {}
        for r in self:
            cols.update(dict.fromkeys(r))
        return list(cols)

    def where(self, **match) -> "Table":
        """Rows whose values equal every ``key=value`` given (a callable value is a predicate)."""
        ok = lambda r: all(v(r.get(k)) if callable(v) else r.get(k) == v for k, v in match.items())  # noqa: E731
        return Table(r for r in self if ok(r))

    def column(self, name: str) -> list:
        return [r.get(name) for r in self]

    def one(self, **match) -> dict:
        rows = self.where(**match)
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} rows match {match}")
        return rows[0]

    def to_markdown(self, columns: Sequence[str] | None = None, digits: int = 3) -> str:
        cols = list(columns or self.columns)

        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return "—" if np.isnan(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"
            return "" if v is None else str(v)

        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in self]
        return "\n".join(lines)

    def to_dataframe(self, columns: Sequence[str] | None = None):
        """The rows as a pandas DataFrame (pandas is not a facelab dependency: Colab has it,
        elsewhere ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Table.to_dataframe needs pandas, which facelab does not install: "
                              "`pip install pandas`, or use to_markdown()") from e
        return pd.DataFrame(list(self), columns=list(columns or self.columns))

    def _repr_markdown_(self) -> str:
        return self.to_markdown()
