"""The benchmark harnesses behind ``avemo bench``: the accuracy section of BENCHMARKS.md rendered from
stored results (:mod:`.accuracy`), the reviewed systems' ablation (:mod:`.ablation`) and the analysis
speed run (:mod:`.speed`). The product itself imports none of this."""
