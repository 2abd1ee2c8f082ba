"""The face + voice + text system's text module (TF-IDF + logistic regression) on CARER.

Fits on ``train.txt`` for each ``C`` in the grid, picks ``C`` by macro-F1 on ``val.txt``, and reports
that model's accuracy and macro-F1 on ``test.txt`` (love has no canonical class: left out, counted).

    python benchmarks/text_carer.py [--out benchmarks/results/systems/text_carer.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from avemo.config import data_root
from avemo.models.registry import create_model
from avemo.models.systems.almulla2024_fvt import fit_text_carer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=float, nargs="+", default=[2.0, 8.0, 16.0, 32.0, 64.0, 128.0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "systems" / "text_carer.json"))
    args = ap.parse_args()
    root = data_root() / "text-emotion-carer"
    runs = []
    for c in args.grid:
        model = create_model("almulla2024_fvt", face_widths=(4,), voice_widths=(4,))
        runs.append(fit_text_carer(model, root, C=c))
        print(f"C={c:<5} val macro-F1 {runs[-1]['val']['macro_f1']:.4f}  accuracy {runs[-1]['val']['accuracy']:.4f}")
    best = max(runs, key=lambda r: r["val"]["macro_f1"])
    print(f"chosen C={best['C']} on val; test accuracy {best['test']['accuracy']:.4f}, "
          f"macro-F1 {best['test']['macro_f1']:.4f} (n={best['test']['n']}, left out {best['left_out']['test']})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/text_carer.py", "commit": commit,
                               "selection": "macro-F1 on val.txt", "chosen": best, "grid": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
