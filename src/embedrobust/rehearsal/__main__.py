"""``python -m embedrobust.rehearsal CONFIG OUT``: prepare a dress rehearsal of a study config and print its run.

Writes generated weights (a Hugging Face cache), datasets in their real layouts and a size overlay under OUT (see
``embedrobust.rehearsal.study``), then prints the command line that runs the study on them.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from ..errors import EmbedRobustError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m embedrobust.rehearsal", description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="a study config, e.g. config/full_study.yaml")
    p.add_argument("out", type=Path, help="directory for the weights, datasets and overlay")
    p.add_argument("--hf-cache", type=Path, help="Hugging Face cache for the weights (default: OUT/hf)")
    p.add_argument("--full-size", action="store_true", help="keep the config's size (only point it at the data)")
    p.add_argument("--no-weights", action="store_true", help="skip the weights (for a dry run)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from .study import prepare

    try:
        overlay = prepare(args.config, args.out, weights=not args.no_weights, size=not args.full_size,
                          hf_cache=args.hf_cache)
    except EmbedRobustError as exc:
        print(f"embedrobust.rehearsal: error: {exc}", file=sys.stderr)
        return 2
    cache = (args.hf_cache or args.out / "hf").resolve()
    print(f"HF_HUB_CACHE={shlex.quote(str(cache))} HF_HUB_OFFLINE=1 snakemake --workflow-profile "
          f"workflow/profiles/default --cores all reports/final.pdf --configfile {shlex.quote(str(args.config))} "
          f"{shlex.quote(str(overlay))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
