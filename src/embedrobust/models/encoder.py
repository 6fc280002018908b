"""The Encoder: one vision model with its own preprocessing, as the rest of the pipeline sees it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torchvision.transforms.functional as TF
from torch import Tensor

_INTERP = {"bicubic": TF.InterpolationMode.BICUBIC, "bilinear": TF.InterpolationMode.BILINEAR,
           "nearest": TF.InterpolationMode.NEAREST}
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Encoder:
    """An image (and optionally text) encoder in eval mode with the preprocessing its library would apply.

    Preprocessing runs on tensors: ``resize_mode`` is one of
      - ``"shortest"``: scale so the image covers ``resize_size`` (H, W) keeping the aspect ratio (for a square
        target: shorter side -> that size, as torchvision ``Resize(int)``), then centre-crop ``input_size``;
      - ``"squash"``: resize to exactly ``resize_size``, then centre-crop ``input_size``;
      - ``"longest"``: scale so the image fits inside ``resize_size``, then centre-crop/pad to ``input_size``
        with ``fill`` (per channel, [0, 1] pixel units).
    Resizing is antialiased, so a tensor result matches the library's PIL transform up to PIL's uint8 rounding.
    """

    def __init__(
        self,
        *,
        spec: dict,
        model: torch.nn.Module,
        embed_dim: int,
        input_size: tuple[int, int],
        resize_size: tuple[int, int],
        resize_mode: str,
        interpolation: str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        fill: tuple[float, float, float] = (0.0, 0.0, 0.0),
        pretrained: bool,
        image_fn: Callable[[torch.nn.Module, Tensor], Tensor],
        text_fn: Callable[[torch.nn.Module, Tensor], Tensor] | None = None,
        tokenizer: Callable[[list[str]], Tensor] | None = None,
        info: dict | None = None,
    ) -> None:
        if resize_mode not in ("shortest", "squash", "longest"):
            raise ValueError(f"resize_mode must be shortest, squash or longest, got {resize_mode!r}")
        if interpolation not in _INTERP:
            raise ValueError(f"interpolation must be one of {sorted(_INTERP)}, got {interpolation!r}")
        self.spec = spec
        self.model = model.eval()
        self.embed_dim = int(embed_dim)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.resize_size = (int(resize_size[0]), int(resize_size[1]))
        self.resize_mode = resize_mode
        self.interpolation = interpolation
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.fill = tuple(float(f) for f in fill)
        self.pretrained = bool(pretrained)
        self.has_text = text_fn is not None and tokenizer is not None
        self._image_fn = image_fn
        self._text_fn = text_fn
        self._tokenizer = tokenizer
        self._info = dict(info or {})

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (where encode_* runs)."""
        return next(self.model.parameters()).device

    def preprocess(self, images: Tensor) -> Tensor:
        """Model input from images.

        images: (N, 3, H, W) float in [0, 1] (uint8 is accepted and scaled by 1/255), any device.
        Returns (N, 3, *input_size) float32, normalised with ``mean``/``std``, on the images' device.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        h, w = x.shape[-2:]
        (rh, rw), mode = self.resize_size, _INTERP[self.interpolation]
        if self.resize_mode == "shortest" and rh == rw:
            new = self._shorter_side(h, w, rh)
        elif self.resize_mode == "shortest":
            scale = max(rh / h, rw / w)
            new = (round(h * scale), round(w * scale))
        elif self.resize_mode == "longest":
            scale = min(rh / h, rw / w)
            new = (max(1, round(h * scale)), max(1, round(w * scale)))  # a 1-px-high strip stays 1 px high
        else:
            new = (rh, rw)
        if new != (h, w):
            # antialias: PIL filters over the whole footprint when downscaling; clamp as PIL stores uint8
            x = TF.resize(x, list(new), interpolation=mode, antialias=True).clamp_(0, 1)
        x = self._crop_or_pad(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @staticmethod
    def _shorter_side(h: int, w: int, size: int) -> tuple[int, int]:
        # torchvision Resize(int): shorter side -> size, longer side truncated (int(), not round())
        if h <= w:
            return size, int(size * w / h)
        return int(size * h / w), size

    def _crop_or_pad(self, x: Tensor) -> Tensor:
        th, tw = self.input_size
        h, w = x.shape[-2:]
        if h < th or w < tw:
            ph, pw = max(th - h, 0), max(tw - w, 0)
            fill = torch.tensor(self.fill, device=x.device).view(1, 3, 1, 1)
            # pad (x - fill) with zeros, i.e. pad x with the fill colour; same split as torchvision's center_crop
            x = torch.nn.functional.pad(x - fill, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2)) + fill
        return TF.center_crop(x, [th, tw])

    def _autocast(self):
        precision = self.spec.get("precision", "fp32")
        if self.device.type == "cuda" and precision in _AUTOCAST:
            return torch.autocast("cuda", dtype=_AUTOCAST[precision])
        return contextlib.nullcontext()

    def encode_image(self, images: Tensor) -> Tensor:
        """Raw (not normalised) embeddings. images: (N, 3, H, W) float in [0, 1] -> (N, embed_dim) float32.

        Images are moved to the model's device; the result stays there.
        """
        with torch.inference_mode():
            x = self.preprocess(images.to(self.device))
            with self._autocast():
                out = self._image_fn(self.model, x)
            return out.float()

    def encode_text(self, texts: list[str]) -> Tensor:
        """Raw (not normalised) text embeddings: n strings -> (n, embed_dim) float32 on the model's device."""
        if not self.has_text:
            raise TypeError(f"{self._info.get('library')} model {self.spec.get('arch')!r} has no text tower")
        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.device)
            with self._autocast():
                out = self._text_fn(self.model, tokens)
            return out.float()

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for store attrs and reports."""
        visual = getattr(self.model, "visual", self.model)
        return {
            **self._info,
            "arch": self.spec.get("arch"),
            "pretrained_tag": self.spec.get("pretrained"),
            "checkpoint": self.spec.get("checkpoint"),
            "pretrained": self.pretrained,
            "precision": self.spec.get("precision", "fp32"),
            "input_size": list(self.input_size),
            "resize_size": list(self.resize_size),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "embed_dim": self.embed_dim,
            "has_text": self.has_text,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "n_params_image": sum(p.numel() for p in visual.parameters()),
        }

    def __repr__(self) -> str:
        return (f"Encoder({self._info.get('library')}:{self.spec.get('arch')}, pretrained={self.pretrained}, "
                f"input_size={self.input_size}, embed_dim={self.embed_dim})")
