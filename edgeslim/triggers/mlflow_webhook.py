"""Create (or update) the MLflow registry webhook that points at the receiver.

Idempotent by name: a second ``edgeslim webhook create`` updates the URL and secret of the
existing webhook instead of adding another that would deliver every promotion twice.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities.webhook import Webhook

from edgeslim.config import Params
from edgeslim.triggers.promotion import EVENT


def receiver_url(p: Params) -> str:
    wh = p.triggers.webhook
    return wh.public_url or f"http://{wh.host}:{wh.port}{wh.path}"


def ensure_webhook(client: MlflowClient, p: Params, secret: str, url: str | None = None) -> Webhook:
    wh = p.triggers.webhook
    url = url or receiver_url(p)
    description = f"edgeslim: {EVENT} for {wh.models or [p.model_name]} @{wh.aliases} starts compression"
    for existing in client.list_webhooks():
        if existing.name == wh.name:
            return client.update_webhook(
                existing.webhook_id,
                url=url,
                secret=secret,
                events=[EVENT],  # type: ignore[list-item]  # EVENT is one of MLflow's literals
                description=description,
                status="ACTIVE",
            )
    return client.create_webhook(name=wh.name, url=url, events=[EVENT], description=description, secret=secret)  # type: ignore[list-item]  # EVENT is one of MLflow's literals
