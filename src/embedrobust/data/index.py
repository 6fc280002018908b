"""The dataset index (``index.csv``): one row per image (``data.dataset`` decodes the images it lists).

Columns: ``image`` (str id, unique), ``file`` (str path, relative to the dataset directory or absolute),
``label`` (int64, 0..C-1), ``class_name`` (str, one per label), ``split`` (``"train"`` / ``"test"``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError

COLUMNS = ["image", "file", "label", "class_name", "split"]
SPLITS = ("train", "test")
INDEX_NAME = "index.csv"


def _check(index: pd.DataFrame, where: str) -> None:
    missing = [c for c in COLUMNS if c not in index.columns]
    if missing:
        raise DataError(f"{where}: missing columns {missing}; an index needs {COLUMNS}. Fetch the dataset again.")
    dup = index["image"][index["image"].duplicated()]
    if len(dup):
        raise DataError(f"{where}: image ids are not unique (e.g. {dup.iloc[0]!r}). Fetch the dataset again.")
    bad = sorted(set(index["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{where}: unknown split values {bad}; expected 'train' or 'test'.")
    if (index["label"] < 0).any():
        raise DataError(f"{where}: negative labels. Labels must be 0..C-1.")


def write_index(index: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``out_dir/index.csv`` deterministically (fixed column order, ``\\n`` line ends); returns its path."""
    index = index[COLUMNS].reset_index(drop=True).astype({"label": "int64"})
    _check(index, "index to write")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / INDEX_NAME
    tmp = path.with_name(path.name + ".tmp")
    index.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)
    return path


def read_index(dataset_dir: Path | str) -> pd.DataFrame:
    """Read and validate ``dataset_dir/index.csv``.

    Returns:
        DataFrame with columns ``image, file, label, class_name, split`` (str except ``label``: int64).

    Raises:
        DataError: no index, or an index with missing columns, duplicate ids or unknown splits.
    """
    path = Path(dataset_dir) / INDEX_NAME
    if not path.is_file():
        raise DataError(f"no dataset index at {path}. Run `embedrobust fetch` for this dataset first.")
    try:
        # keep_default_na=False: a class called "None" or "nan" must stay a string
        index = pd.read_csv(
            path, dtype={"image": str, "file": str, "class_name": str, "split": str}, keep_default_na=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"dataset index {path} is not a readable CSV ({e}). Fetch the dataset again.") from e
    _check(index, str(path))
    try:
        index["label"] = index["label"].astype("int64")
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: labels must be integers ({e}). Fetch the dataset again.") from e
    return index[COLUMNS]


def class_names(index: pd.DataFrame) -> list[str]:
    """Class names ordered by label 0..C-1.

    Raises:
        DataError: a label has several names, or some label in 0..max is absent.
    """
    names = index.groupby("label", sort=True)["class_name"].unique()
    clash = names[names.map(len) > 1]
    if len(clash):
        raise DataError(f"label {clash.index[0]} has several class names {list(clash.iloc[0])}. Fix the index.")
    labels = [int(x) for x in names.index]
    if labels != list(range(len(labels))):
        gaps = sorted(set(range(max(labels, default=-1) + 1)) - set(labels))
        raise DataError(f"labels are not contiguous from 0: missing {gaps[:10]}. Fetch the dataset again.")
    return [str(v[0]) for v in names]


def resolve_files(index: pd.DataFrame, dataset_dir: Path | str) -> list[Path]:
    """Absolute paths of the index's images, in row order (relative entries are under ``dataset_dir``)."""
    root = Path(dataset_dir)
    return [p if p.is_absolute() else root / p for p in map(Path, index["file"])]
