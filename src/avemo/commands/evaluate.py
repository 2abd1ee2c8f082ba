"""``avemo evaluate RECIPE``: score a trained run per fold and as mean ± std (JSON + confusion PNGs)."""

from __future__ import annotations

import argparse

HELP = "score a trained recipe: accuracy, macro-F1, UAR, per-class recall, confusion (per fold, mean ± std)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file (recipes/voice_ravdess.yaml) or its name")
    p.add_argument("--run-dir", help="run folder (default runs/<recipe name>)")
    p.add_argument("--publish", action="store_true",
                   help="also store the results in benchmarks/results/ for BENCHMARKS.md")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avemo.training.recipe import load_recipe
    from avemo.training.runner import evaluate, format_results

    recipe = load_recipe(args.recipe)
    run_dir = Path(args.run_dir) if args.run_dir else recipe.default_run_dir()
    results = evaluate(recipe, run_dir, publish=args.publish)
    print(format_results(results))
    print(f"results: {run_dir / 'results.json'}" + ("  (published to benchmarks/results/)" if args.publish else ""))
    return 0
