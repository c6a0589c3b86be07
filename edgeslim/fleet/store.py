"""The S3 side of paging: artifacts (content-addressed) and manifests, handed to devices as presigned URLs.

Why content-addressed artifacts: re-paging a version, or paging it to a second group, uploads nothing
new, and a manifest can never point at a key whose bytes were replaced by a later publish. Devices
get presigned GET URLs, so they need no AWS credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from edgeslim.config import FleetS3Params
from edgeslim.digest import file_sha256
from edgeslim.errors import FleetError

MANIFEST_CONTENT_TYPE = "application/json"
CURRENT_MANIFEST = "current.json"  # the group's newest manifest, for devices that poll


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    sha256: str
    size: int
    url: str  # presigned GET


class FleetStore:
    """One bucket and prefix; every call maps S3/network errors to one FleetError line."""

    def __init__(self, params: FleetS3Params) -> None:
        self.params = params
        # Local S3 servers answer on an IP: path-style URLs, since a bucket cannot be a subdomain there.
        style = {"addressing_style": "path"} if params.endpoint_url else {}
        self.s3 = boto3.client(
            "s3", endpoint_url=params.endpoint_url, region_name=params.region, config=Config(signature_version="s3v4", s3=style)
        )

    def object_key(self, *parts: str) -> str:
        """``<prefix>/<parts...>``: where this store keeps a file."""
        return "/".join(p.strip("/") for p in (self.params.prefix, *parts) if p.strip("/"))

    def _call(self, what: str, func, **kwargs):  # noqa: ANN001, ANN003, ANN202 (thin boto3 wrapper)
        try:
            return func(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise FleetError(f"S3 {what} in bucket {self.params.bucket} failed: {exc}") from None

    def ensure_bucket(self) -> None:
        """Create the bucket when params allow it and it is missing (local S3 servers)."""
        try:
            self.s3.head_bucket(Bucket=self.params.bucket)
        except ClientError:
            if not self.params.create_bucket:
                raise FleetError(
                    f"S3 bucket {self.params.bucket} does not exist (or is not readable); set fleet.s3.create_bucket or create it"
                ) from None
            self._call("create bucket", self.s3.create_bucket, Bucket=self.params.bucket)
        except BotoCoreError as exc:
            raise FleetError(f"S3 endpoint {self.params.endpoint_url or 'AWS'} unreachable: {exc}") from None

    def presign(self, key: str) -> str:
        return self._call(
            "presign",
            self.s3.generate_presigned_url,
            ClientMethod="get_object",
            Params={"Bucket": self.params.bucket, "Key": key},
            ExpiresIn=self.params.presign_ttl_s,
        )

    def upload_artifact(self, path: Path, model: str) -> StoredArtifact:
        """Upload ``path`` under its sha256 unless an object of that name and size is already there."""
        sha, size = file_sha256(path), path.stat().st_size
        key = self.object_key(model, "artifacts", f"{sha}{path.suffix}")
        try:
            present = self.s3.head_object(Bucket=self.params.bucket, Key=key)["ContentLength"] == size
        except ClientError:
            present = False
        except BotoCoreError as exc:
            raise FleetError(f"S3 endpoint {self.params.endpoint_url or 'AWS'} unreachable: {exc}") from None
        if not present:
            self._call("upload", self.s3.upload_file, Filename=str(path), Bucket=self.params.bucket, Key=key)
        return StoredArtifact(key, sha, size, self.presign(key))

    def put_manifest(self, model: str, group: str, sequence: int, envelope: bytes, current: bool = True) -> str:
        """Store the signed envelope as ``manifests/<sequence>.json`` and (``current``) as the group's current one.

        A staged rollout's manifests are not the group's current one: a polling device would take
        them outside the plan."""
        key = self.object_key(model, group, "manifests", f"{sequence}.json")
        for target in (key, *([self.object_key(model, group, CURRENT_MANIFEST)] if current else [])):
            self._call(
                "manifest upload",
                self.s3.put_object,
                Bucket=self.params.bucket,
                Key=target,
                Body=envelope,
                ContentType=MANIFEST_CONTENT_TYPE,
            )
        return f"s3://{self.params.bucket}/{key}"

    def current_manifest_url(self, model: str, group: str) -> str:
        """Presigned URL of the group's current manifest: what ``edgeslim agent --poll-url`` reads."""
        return self.presign(self.object_key(model, group, CURRENT_MANIFEST))
