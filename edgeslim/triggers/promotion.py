"""Which deliveries are promotions this receiver acts on: ``model_version_alias.created`` for a
configured model and alias. Everything else is acknowledged and ignored (MLflow must not retry it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgeslim.config import Params
from edgeslim.triggers.signature import DeliveryRejected

ENTITY, ACTION = "model_version_alias", "created"
EVENT = f"{ENTITY}.{ACTION}"


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str
    alias: str

    @property
    def ref(self) -> str:
        """The exact version (``NAME:VERSION``): the alias may move again before the run starts."""
        return f"{self.model}:{self.version}"


def watched_models(p: Params) -> list[str]:
    return p.triggers.webhook.models or [p.model_name]


def parse(body: bytes, p: Params) -> tuple[Promotion | None, str]:
    """The promotion in a verified body, or None and why it is ignored."""
    try:
        payload = json.loads(body)
        entity, action, data = payload["entity"], payload["action"], payload["data"]
    except (ValueError, KeyError, TypeError):
        raise DeliveryRejected("body is not an MLflow webhook payload", 400) from None
    if (entity, action) != (ENTITY, ACTION):
        return None, f"event {entity}.{action} is not {EVENT}"
    try:
        promo = Promotion(str(data["name"]), str(data["version"]), str(data["alias"]))
    except (KeyError, TypeError):
        raise DeliveryRejected(f"{EVENT} payload lacks name, version or alias", 400) from None
    if promo.model not in watched_models(p):
        return None, f"model {promo.model} is not watched ({watched_models(p)})"
    if promo.alias not in p.triggers.webhook.aliases:
        return None, f"alias {promo.alias} is not a promotion alias ({p.triggers.webhook.aliases})"
    return promo, f"{promo.ref} promoted to @{promo.alias}"
