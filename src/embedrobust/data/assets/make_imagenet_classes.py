"""Regenerate ``imagenet_classes.tsv`` (1000 lines ``wnid<TAB>name``, wnids sorted) from the installed packages:
timm's ImageNet-1k synset list (``timm/data/_info/imagenet_synsets.txt``, the class-index order every
ImageNet-1k checkpoint uses) zipped with open_clip's ``IMAGENET_CLASSNAMES`` (the CLIP paper's prompt names, in
the same order).

The file is shipped so that fetching a dataset never imports timm or open_clip; tests/data checks that it
still equals what the installed packages give.

    python src/embedrobust/data/assets/make_imagenet_classes.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).with_name("imagenet_classes.tsv")


def imagenet_classes() -> list[tuple[str, str]]:
    """``(wnid, CLIP class name)`` for the 1000 ImageNet-1k classes, in class-index order."""
    from importlib import resources

    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    wnids = resources.files("timm.data._info").joinpath("imagenet_synsets.txt").read_text().split()
    if len(wnids) != 1000 or len(IMAGENET_CLASSNAMES) != 1000 or wnids != sorted(wnids):
        raise RuntimeError(
            f"expected 1000 sorted wnids and 1000 names, got {len(wnids)} wnids and {len(IMAGENET_CLASSNAMES)} names"
        )
    return list(zip(wnids, IMAGENET_CLASSNAMES))


def render(classes: list[tuple[str, str]]) -> str:
    for wnid, name in classes:
        if "\t" in name or "\n" in name or name != name.strip() or not name:
            raise RuntimeError(f"class name {name!r} of {wnid} cannot be stored as one TSV field")
    return "".join(f"{wnid}\t{name}\n" for wnid, name in classes)


if __name__ == "__main__":
    OUT.write_text(render(imagenet_classes()), encoding="utf-8")
    print(f"wrote {OUT}")
