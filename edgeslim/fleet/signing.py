"""Ed25519 signing of manifests, and the device-side check against trusted public keys.

Why Ed25519: small keys and signatures, deterministic, fast on small ARM cores, and in
``cryptography`` (no extra native dependency on the device). The key id in a manifest is a short
fingerprint of the public key, so a device can hold several trusted keys during a key rotation.
Private keys are read from a path given in params or ``$EDGESLIM_SIGNING_KEY``; neither the key nor
its path is ever printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeslim.errors import FleetError, ManifestError
from edgeslim.fleet.manifest import Manifest, canonical_json

SIGNING_KEY_ENV = "EDGESLIM_SIGNING_KEY"
PRIVATE_KEY_FILE = "edgeslim-signing.key"
PUBLIC_KEY_SUFFIX = ".pub"
KEY_ID_HEX = 16


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX]


def generate_keypair(folder: Path) -> tuple[Path, Path]:
    """Write a new private key (mode 0600) and ``<key id>.pub`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    priv_path = folder / PRIVATE_KEY_FILE
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pub_path = folder / f"{key_id(private.public_key())}{PUBLIC_KEY_SUFFIX}"
    pub_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv_path, pub_path


def load_private_key(path: Path | None) -> Ed25519PrivateKey:
    """The signing key from ``path`` or ``$EDGESLIM_SIGNING_KEY`` (errors never show the path)."""
    path = path or (Path(os.environ[SIGNING_KEY_ENV]) if os.environ.get(SIGNING_KEY_ENV) else None)
    if path is None:
        raise FleetError(f"no signing key: set fleet.signing_key or ${SIGNING_KEY_ENV} (make one with `edgeslim keys generate`)")
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError:
        raise FleetError("the signing key file (fleet.signing_key / $EDGESLIM_SIGNING_KEY) cannot be read") from None
    except ValueError:
        raise FleetError("the signing key file is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FleetError("the signing key is not an Ed25519 key")
    return key


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """Trusted keys by key id, from one PEM file or every ``*.pub`` in a folder."""
    files = sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}")) if path.is_dir() else [path]
    keys: dict[str, Ed25519PublicKey] = {}
    for file in files:
        try:
            key = serialization.load_pem_public_key(file.read_bytes())
        except (OSError, ValueError):
            raise FleetError(f"trusted key {file} is not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise FleetError(f"trusted key {file} is not an Ed25519 key")
        keys[key_id(key)] = key
    if not keys:
        raise FleetError(f"no trusted public key found at {path}")
    return keys


def sign(manifest: Manifest, private: Ed25519PrivateKey) -> bytes:
    """The envelope devices receive: the manifest (with this key's id) and its signature."""
    manifest = replace(manifest, key_id=key_id(private.public_key()))
    body = manifest.to_dict()
    signature = base64.b64encode(private.sign(canonical_json(body))).decode()
    return json.dumps({"manifest": body, "signature": signature}, indent=1).encode()


def verify(envelope: bytes, trusted: dict[str, Ed25519PublicKey]) -> Manifest:
    """The manifest inside ``envelope`` if a trusted key signed exactly these bytes; else ManifestError."""
    try:
        data = json.loads(envelope)
        body, signature = data["manifest"], base64.b64decode(data["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ManifestError("not a signed manifest envelope (JSON with manifest and base64 signature)") from None
    if not isinstance(body, dict):
        raise ManifestError("envelope manifest is not an object")
    key = trusted.get(str(body.get("key_id")))
    if key is None:
        raise ManifestError(f"manifest signed by untrusted key id {body.get('key_id')!r}")
    try:
        key.verify(signature, canonical_json(body))
    except InvalidSignature:
        raise ManifestError(f"bad signature on manifest sequence {body.get('sequence')!r} (key id {body.get('key_id')})") from None
    return Manifest.from_dict(body)
