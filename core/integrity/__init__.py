"""Integrity of a workspace: the full check (``check``) over bar files (``bar_checks``),
stray files (``stray_files``) and metadata (``metadata_checks``), its findings
(``findings``), and quarantine of what is suspicious (``quarantine``)."""
