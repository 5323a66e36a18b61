"""Runtimes that execute an exported artifact. Each runner is open → infer → close (a context manager)."""
