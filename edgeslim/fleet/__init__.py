"""Paging the edge fleet: signed update manifests, S3 hand-off, notification channels, rollout tracking.

Modules the edge agent imports (manifest, signing, topics, mqtt) stay free of boto3 and MLflow so a
device needs neither; the publishing side (store, channels, page) may use both.
"""
