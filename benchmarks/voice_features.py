"""Fill the feature cache with Whisper base frames (all layers) for every clip of the six shared speech
corpora, under one channel condition; run several shards in parallel with ``--shard i/n``.

    python benchmarks/voice_features.py --condition clean [--corpora ravdess savee] [--shard 0/2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from avemo.audio.whisper import OnnxWhisperEncoder
from avemo.audio.whisper_features import ALL_LAYERS, clip_features
from avemo.cache import FeatureCache
from avemo.datasets.speech import SPEECH_CORPORA, read_speech_corpora


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--condition", default="clean")
    ap.add_argument("--corpora", nargs="+", default=list(SPEECH_CORPORA))
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--top", default="final", help="highest layer to compute: 0-6 or final (all)")
    ap.add_argument("--shuffle", action="store_true", help="a seeded random order, so that a partial pass is a "
                    "random subset")
    ap.add_argument("--int8", action="store_true", help="the int8-quantized encoder graph, stored as condition "
                    "'int8' (clean audio)")
    args = ap.parse_args()
    if args.int8 != (args.condition == "int8"):
        ap.error("--int8 goes with --condition int8 (and only with it)")
    i, n = (int(v) for v in args.shard.split("/"))
    samples = read_speech_corpora(args.corpora)
    if args.shuffle:
        samples = [samples[k] for k in np.random.default_rng(0).permutation(len(samples))]
    samples = samples[i::n]
    top = args.top if args.top == "final" else int(args.top)
    layers = ALL_LAYERS if top == "final" else tuple(range(top + 1))
    enc = OnnxWhisperEncoder(top, every_layer=True, int8=args.int8)  # float: the numpy encoder within 1e-5
    cache = FeatureCache()
    t0 = time.time()
    for k, s in enumerate(samples):
        clip_features(s.path, enc, condition=args.condition, cache=cache, layers=layers)
        if k % 100 == 0:
            print(f"{k}/{len(samples)} {time.time() - t0:.0f} s {cache.stats()}", flush=True)
    print(f"done {len(samples)} in {time.time() - t0:.0f} s {cache.stats()}", flush=True)


if __name__ == "__main__":
    main()
