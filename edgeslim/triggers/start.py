"""Start a deployment run through the Prefect API (self-hosted Prefect has no inbound webhooks).

``run_deployment(..., timeout=0)`` only creates the flow run; the process serving the deployment
(``edgeslim serve``) picks it up. The delivery id is the idempotency key, so even a retry that slips
past the receiver's own store cannot create a second run.
"""

from __future__ import annotations

from edgeslim.config import Params
from edgeslim.errors import EdgeslimError

# Flow names as declared in flows/ (a unit test checks they match; importing flows here would pull
# torch into the receiver).
COMPRESS_FLOW = "edgeslim-compress"
RETRAIN_FLOW = "edgeslim-retrain"


class StartFailed(EdgeslimError):
    """The Prefect API did not create the run (server down, deployment missing)."""


def compress_deployment(p: Params) -> str:
    return f"{COMPRESS_FLOW}/{p.triggers.compress_deployment}"


def start_compress(p: Params, model_ref: str, idempotency_key: str, reason: str) -> str:
    """Create a run of the compress deployment for ``model_ref``; returns the flow run id."""
    from prefect.deployments import run_deployment

    try:
        run = run_deployment(
            compress_deployment(p),
            parameters={"model": model_ref},
            timeout=0,
            idempotency_key=idempotency_key,
            tags=["edgeslim-trigger"],
            flow_run_name=f"compress {model_ref} ({reason})"[:100],
            as_subflow=False,
        )
    except Exception as exc:
        raise StartFailed(f"could not start {compress_deployment(p)} for {model_ref}: {type(exc).__name__}: {exc}") from exc
    return str(run.id)  # type: ignore[union-attr]  # sync call: a FlowRun, not the coroutine of the async overload
