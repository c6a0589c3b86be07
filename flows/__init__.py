"""Prefect flows: the DAGs that chain the tasks/ steps."""
