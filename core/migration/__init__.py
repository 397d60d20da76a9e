"""The layout migration: legacy (one file per ticker) to partitioned (ticker/year/month).

One module per step (plan, estimate, dryrun, run, verify, activate, rollback, finalize,
status); the per-ticker work runs in worker processes (``worker``) over the bar logic of
``bars_table``, ``months`` and ``digest``; ``staging`` and ``durability`` make a batch of
files durable and visible; ``checkpoint`` keeps the plan's records.

Only the worker-side modules import pyarrow: the process that holds the lock and the plan
stays light, so it can fork its workers safely.
"""
