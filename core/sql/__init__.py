"""Read-only SQL over a workspace with DuckDB: the engine, its views, output and history.

``core.sql.engine`` opens the locked-down connection, ``core.sql.views`` builds the views
from parqctl's own engine, ``core.sql.output`` writes results (CSV, JSON, Parquet)
atomically where parqctl may write, ``core.sql.history`` keeps the console's past queries.
"""

from core.sql.engine import (
    EngineOptions,
    QueryError,
    QueryInterrupted,
    QueryResult,
    SqlEngine,
)
from core.sql.views import ViewSpec

__all__ = [
    "EngineOptions",
    "QueryError",
    "QueryInterrupted",
    "QueryResult",
    "SqlEngine",
    "ViewSpec",
]
