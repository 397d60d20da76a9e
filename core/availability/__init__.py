"""Which trading sessions have bars: calendars (``calendars``, ``session_cache``), the
incremental file index (``index``), coverage and gaps (``coverage``, ``gaps``), the
heatmap's data (``heatmap``) and the gap summaries health reads (``gap_watch``,
``saved_gaps``)."""
