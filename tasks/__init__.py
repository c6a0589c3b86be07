"""Prefect tasks: the registry's steps as tasks (tasks.step.as_task), and the flows' own steps at
the edges: pull from and publish to MLflow, page the fleet, register and retrain."""
