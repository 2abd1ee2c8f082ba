"""``avemo train RECIPE``: run a recipe's cross-validation protocol (resumable), or ``--final``: train
the shipped model on every speaker and write its bundle."""

from __future__ import annotations

import argparse

HELP = "train a recipe (recipes/*.yaml) over its speaker-independent folds, or the final shipped model"


def parse_overrides(pairs: list[str]) -> dict:
    """``key.sub=value`` pairs, values read as YAML (numbers, lists, booleans)."""
    import yaml

    from avemo.training.recipe import RecipeError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise RecipeError(f"--set expects key=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file (recipes/voice_ravdess.yaml) or its name")
    p.add_argument("--run-dir", help="run folder (default runs/<recipe name>)")
    p.add_argument("--folds", help="comma-separated fold numbers to train (default: all)")
    p.add_argument("--final", action="store_true",
                   help="train on every speaker with the recipe's settings and write the shipped bundle")
    p.add_argument("--bundle-dir", help="where a bundle is written (with --final, or by a face recipe with ship.write; "
                                          "default: the package's weights)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import torch
    from threadpoolctl import threadpool_limits

    from avemo.training.recipe import load_recipe

    torch.set_num_threads(max(1, args.threads))
    recipe = load_recipe(args.recipe, parse_overrides(args.set))
    from avemo.training import distributed

    try:
        with threadpool_limits(limits=max(1, args.threads)):  # BLAS under scikit-learn: no oversubscription
            return _run(args, recipe)
    finally:
        distributed.teardown()  # under torchrun: leave the process group


def _run(args: argparse.Namespace, recipe) -> int:
    from pathlib import Path

    from avemo.training import distributed

    if distributed.world_size() > 1:
        from avemo.errors import AvemoError

        if args.final:
            raise AvemoError("--final trains in one process; run the folds under torchrun, the final model without it")
        if recipe.kind not in ("voice", "face", "system"):
            raise AvemoError(f"a {recipe.kind} recipe does not train with the Trainer; run it in one process, "
                             "not under torchrun")
    if args.final:
        from avemo.training.final import train_final

        folder = train_final(recipe, Path(args.bundle_dir) if args.bundle_dir else None,
                             run_dir=Path(args.run_dir) if args.run_dir else None, show=not args.quiet)
        print(f"bundle written to {folder}")
        return 0
    from avemo.training.runner import train

    only = [int(k) for k in args.folds.split(",")] if args.folds else None
    run_dir = train(recipe, Path(args.run_dir) if args.run_dir else None, only=only, show=not args.quiet,
                    bundle_dir=Path(args.bundle_dir) if args.bundle_dir else None)
    if not distributed.is_main():
        return 0
    print(f"trained {recipe.name} in {run_dir}; score it with: avemo evaluate {args.recipe}"
          + (f" --run-dir {args.run_dir}" if args.run_dir else ""))
    return 0
