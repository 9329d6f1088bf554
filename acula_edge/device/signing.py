"""Optional Ed25519 signatures for bundles that travel (``pip install 'acula-edge[sign]'``: pyca's
``cryptography``).

``python -m export sign BUNDLE --key KEY.pem`` signs the bytes of ``bundle.json`` and writes the
signature to ``bundle.sig`` beside it. ``bundle.json`` holds the sha256 of every file of the bundle
and loading checks each one, so the signature covers the model files, prompts and self-test too
(not ``MODEL_CARD.md``, which is documentation). ``python -m acula_edge.listen --trusted-key PUB.pem``
refuses a bundle whose signature is missing or was not made by that key's private half: a bundle
changed after signing, even with its checksums updated, no longer verifies.
"""

from __future__ import annotations

from pathlib import Path

from acula_edge.errors import AculaError

SIGNATURE = "bundle.sig"


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise AculaError("bundle signatures need cryptography: pip install 'acula-edge[sign]'") from e
    return serialization, ed25519


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise AculaError(f"{what} {path}: {e.strerror or e}") from None


def generate_key(private: str | Path, public: str | Path) -> None:
    """Write a new Ed25519 key pair as PEM files (the private one readable by its owner only)."""
    serialization, ed25519 = _crypto()
    for p in (private, public):
        if Path(p).exists():
            raise AculaError(f"{p} exists; choose another name (a key is never overwritten)")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    Path(private).touch(mode=0o600)
    Path(private).write_bytes(pem)
    Path(public).write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))


def sign_bundle(bundle: str | Path, private_key: str | Path) -> Path:
    """Sign ``bundle``'s ``bundle.json`` with an Ed25519 private key (PEM); the signature file."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(_read(private_key, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise AculaError(f"{private_key}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise AculaError(f"{private_key}: not an Ed25519 key")
    out = Path(bundle) / SIGNATURE
    tmp = out.with_name(f".{SIGNATURE}.tmp")
    tmp.write_bytes(key.sign(_read(Path(bundle) / "bundle.json", "bundle description")))
    tmp.replace(out)
    return out


def check_signature(bundle: str | Path, public_key: str | Path) -> None:
    """Raise :class:`AculaError` unless ``bundle.sig`` is a signature of ``bundle.json`` by the private
    half of ``public_key`` (PEM)."""
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        key = serialization.load_pem_public_key(_read(public_key, "trusted key"))
    except ValueError as e:
        raise AculaError(f"{public_key}: not a PEM public key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise AculaError(f"{public_key}: not an Ed25519 public key")
    described = _read(Path(bundle) / "bundle.json", "bundle description")
    sig = Path(bundle) / SIGNATURE
    if not sig.is_file():
        raise AculaError(f"{bundle}: not signed (no {SIGNATURE}), and --trusted-key asks for a signed bundle")
    try:
        key.verify(sig.read_bytes(), described)
    except InvalidSignature:
        raise AculaError(f"{bundle}: its signature does not match --trusted-key {public_key} (bundle.json changed "
                         "after signing, or another key signed it)") from None


__all__ = ["SIGNATURE", "check_signature", "generate_key", "sign_bundle"]
