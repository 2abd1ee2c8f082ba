"""The benchmark harnesses behind ``avemo bench``: the accuracy section of BENCHMARKS.md rendered from
stored results (:mod:`.accuracy`), the reviewed systems' ablation (:mod:`.ablation`), the analysis
speed run (:mod:`.speed`) and batch throughput (:mod:`.batch`). The product itself imports none of this."""
