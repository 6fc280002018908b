"""Find pretrained weights locally first; download only when the network answers quickly.

Both open_clip and timm keep their weights on the Hugging Face hub (a few older ones behind plain URLs). Their own
loaders retry for minutes when there is no network, so the lookup here goes: local cache -> offline flag ->
a short connectivity probe -> download. Environment variables are read at call time (huggingface_hub reads them
once at import), so a test or a job script can point HF_HOME at another cache after import.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from embedrobust.core import reachable
from embedrobust.errors import DataError, OfflineError

_TRUE = {"1", "on", "yes", "true"}


def hf_cache_dir() -> Path:
    """The hub cache huggingface_hub would use with the current environment (HF_HUB_CACHE > HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface" / "hub"


def hf_offline() -> bool:
    """True when the user asked the hub libraries not to touch the network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_message(what: str, reason: str, warm_cache: str, cache: Path | None = None) -> str:
    """The OfflineError text: what is missing, why, and the three ways to fix it."""
    where = f"({cache}) here" if cache else f"({hf_cache_dir()}) here or point HF_HOME / HF_HUB_CACHE at a shared copy"
    return (
        f"cannot load pretrained weights for {what}: {reason}. Fix one of: "
        f"(1) on a machine with network, fill the Hugging Face cache once with `{warm_cache}` and copy the cache "
        f"directory {where}; "
        f"(2) set `checkpoint:` in the model spec to a local weights file; "
        f"(3) use `pretrained: none` for a random-init model."
    )


def cached_hf_file(repo_id: str, filenames: list[str]) -> Path | None:
    """First of ``filenames`` present in the local hub cache for ``repo_id`` (main revision), else None."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=hf_cache_dir())
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def ensure_online(what: str, url: str, warm_cache: str, cache: Path | None = None) -> None:
    """Raise OfflineError quickly when a download of ``url`` cannot succeed."""
    if hf_offline():
        reason = "not in the local cache and HF_HUB_OFFLINE is set"
        raise OfflineError(offline_message(what, reason, warm_cache, cache))
    parts = urllib.parse.urlsplit(url)
    if not reachable(f"{parts.scheme}://{parts.netloc}/"):
        reason = f"not in the local cache and {parts.netloc} is unreachable (no network?)"
        raise OfflineError(offline_message(what, reason, warm_cache, cache))


def fetch_hf_file(repo_id: str, filenames: list[str], what: str, warm_cache: str) -> Path:
    """Local path of the first of ``filenames`` in hub repo ``repo_id``, downloading it if needed.

    Raises OfflineError within a few seconds when the file is not cached and the hub cannot be reached.
    """
    hit = cached_hf_file(repo_id, filenames)
    if hit is not None:
        return hit
    ensure_online(what, hf_endpoint(), warm_cache)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=hf_cache_dir()))
        except EntryNotFoundError:
            continue
    raise DataError(f"cannot load pretrained weights for {what}: hub repo {repo_id} has none of {filenames}; "
                    f"set `checkpoint:` to a local weights file")


def cached_url_file(url: str, cache_dir: Path) -> Path | None:
    """The file a library would have cached for ``url`` in ``cache_dir`` (weights not on the hub), else None."""
    target = Path(cache_dir) / os.path.basename(urllib.parse.urlsplit(url).path)
    return target if target.is_file() else None
