"""The shipped ImageNet class-name map equals what timm and open_clip give, and reading it imports neither."""

import runpy
import subprocess
import sys

from embedrobust.data.sources import IMAGENET_CLASSES_FILE, imagenet_class_map


def test_shipped_map_equals_the_installed_packages():
    generator = runpy.run_path(str(IMAGENET_CLASSES_FILE.with_name("make_imagenet_classes.py")))
    assert IMAGENET_CLASSES_FILE.read_text(encoding="utf-8") == generator["render"](generator["imagenet_classes"]())


def test_map_is_the_sorted_thousand_wnids():
    mapping = imagenet_class_map()
    assert len(mapping) == 1000 and list(mapping) == sorted(mapping)
    assert mapping["n01440764"] == "tench" and mapping["n15075141"] == "toilet paper"


def test_reading_the_map_imports_neither_timm_nor_open_clip():
    code = (
        "import sys; from embedrobust.data.sources import imagenet_class_map; imagenet_class_map(); "
        "print(sorted(m for m in ('timm', 'open_clip') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
