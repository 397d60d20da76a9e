from __future__ import annotations

import pytest

from core.jobs import CancelToken, JobCancelled, ProgressTracker
from tui.progress import progress_line


def test_progress_rate_and_eta_with_a_fixed_clock():
    now = [100.0]
    seen = []
    tracker = ProgressTracker("migrate", 10, "tickers", seen.append, clock=lambda: now[0])
    now[0] = 104.0
    progress = tracker.advance(2, rows=8000)
    assert seen == [progress]
    assert (progress.rate, progress.rows_per_s, progress.eta_s) == (0.5, 2000.0, 16.0)
    assert progress_line(progress, width=10) == (
        "migrate [##........] 2/10 tickers, 2,000 rows/s, 4s elapsed, ETA 16s"
    )
    assert ProgressTracker("x", 5, "files", clock=lambda: 0.0).snapshot().eta_s is None


def test_cancel_token():
    token = CancelToken()
    token.raise_if_cancelled()
    token.cancel()
    assert token.cancelled
    with pytest.raises(JobCancelled, match="cancelled") as err:
        token.raise_if_cancelled("parqctl migrate run --resume")
    assert err.value.hint == "parqctl migrate run --resume"
