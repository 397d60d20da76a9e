"""Getting bars into the workspace the way the collector would have written them.

yahoo          the one seam to Yahoo Finance (yfinance, or recorded responses)
normalize      yfinance's frame -> the collector's bar table, exactly as it does it
limits         Yahoo's per-request windows and how far back each interval reaches
pacing         the token bucket and the exponential backoff, on an injected clock
store          merging bars into where the collector reads them, by (stock, date)
registry       tickers.json updated the way the collector updates it
confirmed_empty windows Yahoo answered with no bars, kept under .parqctl/
settings       the [ingest] table of .parqctl/config.toml
runner         the request loop shared by fetch and backfill (probe, lock, write)
fetch          ``parqctl fetch``: a date range for named tickers
backfill       ``parqctl backfill``: the recoverable gaps, most urgent first
csv_import     ``parqctl import-csv``: validated CSV files
"""
