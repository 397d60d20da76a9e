"""Disk space: usage against the watermarks (``watermarks``), where the bytes are
(``usage``) and growth over time (``history``)."""
