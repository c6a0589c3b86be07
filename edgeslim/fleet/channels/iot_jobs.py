"""AWS IoT Jobs channel: one job per manifest, the signed envelope as its job document.

The job id is derived from model, group and sequence, so a retried ``create_job`` whose first try
did reach AWS finds its own job instead of creating a second one.
"""

from __future__ import annotations

import re

import boto3
from botocore.exceptions import ClientError

from edgeslim.config import FleetParams
from edgeslim.fleet.manifest import Manifest

JOB_ID_MAX = 64  # AWS IoT limit
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def job_id(manifest: Manifest) -> str:
    return _NOT_ID.sub("-", f"edgeslim-{manifest.model}-{manifest.group}-{manifest.sequence}")[-JOB_ID_MAX:]


def send(params: FleetParams, manifest: Manifest, envelope: bytes) -> None:
    cfg = params.iot_jobs
    iot = boto3.client("iot", region_name=cfg.region, endpoint_url=cfg.endpoint_url)
    try:
        iot.create_job(
            jobId=job_id(manifest),
            targets=list(cfg.targets),
            document=envelope.decode(),
            targetSelection="SNAPSHOT",
            description=f"{manifest.model} v{manifest.version} to {manifest.group} (sequence {manifest.sequence})",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
            raise
