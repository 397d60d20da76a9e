"""The store as the collector keeps it: paths and ticker safety (``layout``), the JSON
metadata (``metadata``), routing a (ticker, interval) as the collector does (``routing``),
bar tables and files (``bars``), opening a workspace (``workspace``) and the demo store
(``demo``)."""
