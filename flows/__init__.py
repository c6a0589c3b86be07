"""Prefect flows: the compress DAG of edgeslim.dag.registry between pull and publish, the baseline and retrain flows."""
