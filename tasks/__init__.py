"""Prefect tasks: one per pipeline step, each a thin wrapper over one library function."""
