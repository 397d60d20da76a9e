"""Queries other screens open the Query screen with (``screens.query.open_query``): the bars
of a ticker around a day (heatmap), a finding's file as the index and the last check see
it (integrity). Values are quoted as SQL literals; nothing is run here."""

from __future__ import annotations

from datetime import date, timedelta

from core.store.layout import validate_interval, validate_ticker

DAYS_AROUND = 7


def literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def bars_around(ticker: str, interval: str, day: date, days: int = DAYS_AROUND) -> str:
    """The ticker's bars from ``days`` before ``day`` to ``days`` after it."""
    validate_ticker(ticker)
    validate_interval(interval)
    start, end = day - timedelta(days=days), day + timedelta(days=days + 1)
    return (
        f"-- {ticker} {interval} bars around {day.isoformat()}\n"
        f"SELECT * FROM bars_{interval}\n"
        f"WHERE ticker = {literal(ticker)}\n"
        f"  AND date >= '{start.isoformat()}' AND date < '{end.isoformat()}'\n"
        "ORDER BY date"
    )


def finding_file(path: str) -> str:
    """A finding's file: every finding of the last check about it, with what the file
    index knows of it (rows, bytes, dates, why it is unreadable)."""
    return (
        f"-- the findings about {path}, with the file index's record\n"
        "SELECT f.severity, f.code, f.message, i.layout, i.ticker, i.interval, i.rows,\n"
        "       i.bytes, i.min_date, i.max_date, i.readable, i.error\n"
        "FROM findings f LEFT JOIN files i USING (path)\n"
        f"WHERE f.path = {literal(path)}"
    )
