"""What keeps every write safe: atomic durable writes (``atomic``), the shared run lock
(``run_lock``), confinement to the workspace (``containment``) and the audit log
(``audit``)."""
