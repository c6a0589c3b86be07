"""Which failures of the registry (MLflow) or the artifact store (S3) are worth another try.

A task retry (``prefect.task_retries``) is for a server that is restarting, overloaded or briefly
unreachable: a dropped connection, a timeout, a 5xx. A bad reference, a missing version or a
refused request fails the same way every time, so it is reported at once, not after the retries.
MLflow's own HTTP retries (``mlflow.http_retries``) come first; what they give up on surfaces as
an ``MlflowException`` wrapping the transport error, which is why the message is matched too.
"""

from __future__ import annotations

import botocore.exceptions
import requests
from mlflow.exceptions import MlflowException

TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED"})
MLFLOW_TRANSPORT_FAILURE = "API request to "  # rest_utils' wrapper around a requests error: "... failed with exception ..."
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, is a transport failure or a 5xx."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TRANSIENT_TYPES):
            return True
        if isinstance(current, MlflowException) and (
            current.error_code in TRANSIENT_MLFLOW_CODES or current.message.startswith(MLFLOW_TRANSPORT_FAILURE)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
