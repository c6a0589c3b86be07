"""What starts the flows without a person: MLflow registry webhooks (promotion), schedules, pushes.

Library only (no Prefect inside except ``start.py``, the one call that creates a deployment run).
"""
