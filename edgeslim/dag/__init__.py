"""The compress DAG, declared once: the Prefect flow, the DVC stages, the benchmark and the tests
all run the steps of :mod:`edgeslim.dag.registry` through :func:`edgeslim.dag.run.run_steps`."""
