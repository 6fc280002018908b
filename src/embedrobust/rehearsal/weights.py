"""Seeded random-init weights of real architectures, written where the Hugging Face hub cache keeps the real ones.

    paths = write_pretrained(config["models"], Path("rehearsal/hf-hub"), seed=0)
    # then, with HF_HUB_CACHE=rehearsal/hf-hub HF_HUB_OFFLINE=1:
    open_clip.create_model("ViT-B-32", pretrained="openai")              # loads the generated file
    timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=True)

Each file holds exactly what the real hub file of that name holds: the library's own ``state_dict()`` of the
architecture at its default size (DINOv2 at 518 px, so timm resamples ``pos_embed`` on load as it does for the real
weights), fp32, with the pretrained config's classifier (none for DINO/DINOv2), serialised as the libraries'
own hub uploaders do (``safetensors.torch.save_file`` without metadata). Only the values are random.

Cache layout (huggingface_hub's, without symlinks, as it writes on file systems that lack them)::

    <cache>/models--{org}--{name}/refs/main                      the commit below
    <cache>/models--{org}--{name}/snapshots/{commit}/{filename}  the weights
    <cache>/models--{org}--{name}/rehearsal/{filename}.json      what generated them (no loader reads it)

The commit is one fixed fake hash, so the same seed gives the same bytes everywhere. A repo whose ``refs/main``
names another commit is a real download: it is never overwritten.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

import torch

from embedrobust.errors import ConfigError, DataError
from embedrobust.models.spec import normalise_spec, seeded
from embedrobust.rehearsal import REHEARSAL_COMMIT

__all__ = ["REHEARSAL_COMMIT", "hub_files", "write_pretrained"]

log = logging.getLogger(__name__)

# bump when what a file contains changes for the same inputs (the content key then differs, files are rebuilt)
_FORMAT = 1
_HASH_CHUNK = 1 << 24


def _open_clip_target(spec: dict) -> tuple[str, str, str]:
    """(repo_id, filename, arch) of an open_clip spec's tag, resolved as embedrobust and open_clip resolve it."""
    from embedrobust.models import openclip

    arch, tag = spec["arch"], spec["pretrained"]
    openclip._check_arch(arch)
    cfg = openclip._tag_cfg(arch, tag)
    if cfg.get("file") or not cfg.get("hf_hub"):
        raise ConfigError(f"open_clip {arch!r} / {tag!r}: its weights come from {cfg.get('file') or cfg.get('url')!r}, "
                          f"not the Hugging Face hub; rehearsal weights exist only for hub-hosted tags "
                          f"(e.g. 'openai')")
    repo_id, filename = openclip._split_hf(cfg["hf_hub"])
    # both open_clip (download_pretrained_from_hf) and embedrobust try the safetensors name first
    if not filename or filename == "open_clip_pytorch_model.bin":
        filename = "open_clip_model.safetensors"
    elif filename.endswith((".bin", ".pth")):
        filename = filename[:-4] + ".safetensors"
    return repo_id, filename, arch


def _timm_target(spec: dict) -> tuple[str, str, str]:
    """(repo_id, filename, timm model name) of a timm spec's pretrained weights."""
    import timm.models

    from embedrobust.models import timm_backend

    name = timm_backend._resolve_name(spec["arch"], spec["pretrained"])
    cfg = timm.models.get_pretrained_cfg(name)
    if not cfg.hf_hub_id:
        raise ConfigError(f"timm {name!r}: its weights come from {cfg.url or cfg.file!r}, not the Hugging Face hub; "
                          f"rehearsal weights exist only for hub-hosted models")
    if "@" in cfg.hf_hub_id:
        raise ConfigError(f"timm {name!r} pins hub revision {cfg.hf_hub_id!r}; rehearsal weights are written under "
                          f"refs/main only")
    if cfg.custom_load:
        raise ConfigError(f"timm {name!r} loads a non-native format (custom_load); rehearsal weights cannot stand in")
    # the first name timm's load_state_dict_from_hf and embedrobust's lookup try
    filename = timm_backend._hub_filenames(cfg.hf_hub_filename)[0]
    return cfg.hf_hub_id, filename, name


def _target(spec: dict) -> tuple[str, str, str] | None:
    spec = normalise_spec(spec)
    if spec["pretrained"] is None or spec["checkpoint"] is not None:
        return None  # random init, or a local file: nothing comes from the hub
    return (_open_clip_target if spec["library"] == "open_clip" else _timm_target)(spec)


def hub_files(spec: dict) -> list[tuple[str, str]]:
    """The (repo_id, filename) pairs the hub cache must hold for ``spec`` (a model spec, normalised or not).

    Empty for ``pretrained: none`` and for specs with a ``checkpoint:`` file. Raises UnknownNameError for an
    unknown library, architecture or tag, ConfigError for weights that do not live on the hub.
    """
    target = _target(spec)
    return [] if target is None else [target[:2]]


def _repo_dir(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def _content(library: str, model: str, repo_id: str, filename: str, seed: int) -> dict:
    """Everything the bytes of a generated file depend on (library and torch versions change init and keys)."""
    if library == "open_clip":
        import open_clip

        version = open_clip.__version__
    else:
        import timm

        version = timm.__version__
    content = {"generator": __name__, "format": _FORMAT, "library": library, "library_version": version,
               "torch": torch.__version__.split("+")[0], "model": model, "repo_id": repo_id, "filename": filename,
               "commit": REHEARSAL_COMMIT, "seed": seed}
    content["key"] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return content


def _build_state(library: str, model: str, seed: int) -> dict[str, torch.Tensor]:
    """The state dict a real hub file of ``model`` holds, with seeded random values (fp32, default size)."""
    with seeded(seed):
        if library == "open_clip":
            import open_clip

            # open_clip warns on the root logger that the model is random; here that is the point
            previous = logging.root.manager.disable
            logging.disable(logging.WARNING)
            try:
                net = open_clip.create_model(model, pretrained=None, device="cpu")
            finally:
                logging.disable(previous)
        else:
            import timm

            # pretrained=False keeps the tag's pretrained_cfg (num_classes, img_size), as the uploaded model had
            net = timm.create_model(model, pretrained=False)
    return {k: v.detach().contiguous() for k, v in net.state_dict().items()}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file next to ``path``, then rename it to ``path`` (killed runs leave no
    partial file under the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.touch()
        # safetensors creates files 0600; huggingface_hub gives cached files the umask's default mode
        mode = stat.S_IMODE(tmp.stat().st_mode)
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _claim(repo: Path, repo_id: str) -> None:
    """Refuse a repo that holds a real download, so a rehearsal never shadows real weights."""
    ref = repo / "refs" / "main"
    if ref.is_file() and ref.read_text().strip() != REHEARSAL_COMMIT:
        raise DataError(f"{repo} holds a real download of {repo_id} (refs/main = {ref.read_text().strip()}); "
                        f"rehearsal weights would replace it. Give write_pretrained an empty, separate cache "
                        f"directory and point HF_HUB_CACHE at it for the rehearsal")


def _is_current(repo: Path, filename: str, content: dict) -> bool:
    marker = repo / "rehearsal" / f"{filename}.json"
    file = repo / "snapshots" / REHEARSAL_COMMIT / filename
    if not (marker.is_file() and file.is_file()):
        return False
    ref = repo / "refs" / "main"
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return (recorded.get("key") == content["key"] and recorded.get("bytes") == file.stat().st_size
            and ref.is_file() and ref.read_text().strip() == REHEARSAL_COMMIT)


def _save(state: dict[str, torch.Tensor], filename: str, tmp: Path) -> None:
    if filename.endswith(".safetensors"):
        import safetensors.torch

        # as timm's and open_clip's hub uploaders save (no metadata)
        safetensors.torch.save_file(state, str(tmp))
    else:
        torch.save(state, tmp)


def write_pretrained(specs: dict[str, dict], cache_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write rehearsal weights for every spec of ``specs`` (name -> model spec) that has pretrained weights.

    ``cache_dir`` is the directory to use as HF_HUB_CACHE. A file already written with the same content key
    (seed, library and torch versions, model) is left as it is. Specs with ``pretrained: none`` or a
    ``checkpoint:`` are skipped; specs sharing a hub file build it once. Models are built one at a time on the
    CPU (ViT-L/14 DINOv2: 304M parameters, a 1.2 GB file; all eight study models: ~35 s, 2 GB peak RSS, 3.5 GB
    on disk, on 2 CPU cores).

    Returns spec name -> path of its weights file inside the snapshot. Raises UnknownNameError (unknown library,
    arch or tag), ConfigError (weights not on the hub), DataError (``cache_dir`` holds a real download of a repo).
    """
    cache_dir = Path(cache_dir)
    targets = {name: _target(spec) for name, spec in specs.items()}  # resolve all first: bad names fail before work
    out: dict[str, Path] = {}
    done: dict[tuple[str, str], Path] = {}
    todo = [(n, t) for n, t in targets.items() if t is not None]
    for i, (name, (repo_id, filename, model)) in enumerate(todo, 1):
        if (repo_id, filename) in done:
            out[name] = done[repo_id, filename]
            continue
        library = normalise_spec(specs[name])["library"]
        repo = _repo_dir(cache_dir, repo_id)
        path = repo / "snapshots" / REHEARSAL_COMMIT / filename
        content = _content(library, model, repo_id, filename, seed)
        _claim(repo, repo_id)
        if _is_current(repo, filename, content):
            log.info("[%d/%d] %s: %s/%s already written", i, len(todo), name, repo_id, filename)
        else:
            start = time.perf_counter()
            log.info("[%d/%d] %s: building %s %s (seed %d)", i, len(todo), name, library, model, seed)
            for stale in path.parent.glob(f".{filename}.*.tmp"):  # left by a killed run
                stale.unlink(missing_ok=True)
            state = _build_state(library, model, seed)
            n_params = sum(v.numel() for v in state.values())
            _atomic_write(path, lambda tmp, state=state, filename=filename: _save(state, filename, tmp))
            del state
            gc.collect()
            _write_text(repo / "refs" / "main", REHEARSAL_COMMIT)
            (repo / "blobs").mkdir(exist_ok=True)  # huggingface_hub's layout has it; this writer leaves it empty
            record = {**content, "bytes": path.stat().st_size, "sha256": _sha256(path), "numel": n_params}
            _write_text(repo / "rehearsal" / f"{filename}.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
            log.info("[%d/%d] %s: wrote %s/%s (%.1fM values, %.0f MB) in %.1f s", i, len(todo), name, repo_id,
                     filename, n_params / 1e6, record["bytes"] / 1e6, time.perf_counter() - start)
        out[name] = done[repo_id, filename] = path
    return out
