"""Analysis at scale: many files into one Parquet dataset of timelines, in one process or on Ray.

- :mod:`avemo.scale.batch`: inputs (folders, globs, manifests), the plan (finished files skipped), the
  engines (``local``: one process; ``ray``: Ray Data with a pool of workers that load the models once);
- :mod:`avemo.scale.store`: the output folder (``timelines/file=<name>/``, ``status.parquet``) and its readers
  (:func:`~avemo.scale.store.read_timelines`, :func:`~avemo.scale.store.read_status`,
  :func:`~avemo.scale.store.load_timeline`).

Ray is an optional extra (``pip install 'avemo[distributed]'``); the local engine needs none of it.
"""
