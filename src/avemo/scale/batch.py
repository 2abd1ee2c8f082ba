"""Batch analysis of many files into one Parquet dataset, in this process or on a Ray cluster.

Dataflow::

    folder / manifest / globs ─ expand_inputs ─ plan (names, stamps; finished files skipped)
        ─┬─ local: one Analyzer, the files one after another
         └─ ray:   Ray Data, files as rows ─ map_batches(AnalyzeWorker, fixed actor pool) ─ status rows
    each file: Analyzer.analyze ─ its partition timelines/file=<name>/ ─ its status record
    end: status.parquet (every file: status, error, seconds)

Each worker (a Ray actor, one CPU) loads the models once and then analyses file after file; it writes its
files' partitions itself, so only small status rows travel through Ray's object store. A file that fails
(a Python exception) is recorded with its error; a file that kills its worker process (a crash in native
code, out of memory) is retried on a fresh worker, and recorded as failed after two deaths; neither stops the
batch.
On a cluster every node must see the inputs and ``OUT`` at the same paths (a shared file system).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError
from avemo.scale import store

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
MANIFEST_SUFFIXES = frozenset({".csv", ".txt", ".lst"})


def read_manifest_paths(path: Path) -> list[Path | str]:
    """The inputs a manifest lists: a CSV with a ``path`` column, or a text file with one path per line
    (``#`` starts a comment). Relative paths are relative to the manifest's folder; http(s) URLs stay as they are."""
    import pandas as pd

    from avemo.media.fetch import is_url

    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "path" not in table.columns:
                raise AvemoError(f"{path}: a manifest CSV needs a 'path' column (has {list(table.columns)})")
            items = [p.strip() for p in table["path"]]
        else:
            items = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise AvemoError(f"{path}: cannot read the manifest: {exc}") from None
    out: list[Path | str] = []
    for item in items:
        if item and is_url(item):
            out.append(item)
        elif item:
            p = Path(item).expanduser()
            out.append(p if p.is_absolute() else path.parent / p)
    return out


def collect_inputs(items: Iterable[str | Path], urls: list[str] | None = None) -> list[Path]:
    """Folders (searched recursively), files, globs and manifests (``.csv``, ``.txt``, ``.lst``) -> the inputs.
    The http(s) URLs given or listed are appended to ``urls`` (for :func:`avemo.media.fetch.fetch_all`); without
    that list a URL is an error."""
    from avemo.inference.batch import expand_inputs
    from avemo.media.fetch import is_url

    expanded: list[str | Path] = []
    for item in items:
        p = Path(item)
        if not is_url(item) and p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            expanded += read_manifest_paths(p)
        else:
            expanded.append(item)
    found = list(dict.fromkeys(str(i) for i in expanded if is_url(i)))
    if found and urls is None:
        raise AvemoError(f"{found[0]}: a URL; download it first (avemo.media.fetch.fetch_all)")
    if urls is not None:
        urls.extend(found)
    return expand_inputs([i for i in expanded if not is_url(i)])


@dataclass
class BatchSettings:
    """What every worker needs: the bundle names (``face``, ``voice``, ``fusion``; empty: the defaults) and the
    :class:`~avemo.inference.analyzer.AnalyzerConfig` settings."""

    models: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def analyzer(self) -> Any:
        from avemo.inference.analyzer import Analyzer

        return Analyzer(dict(self.models) or "default", **self.config)


@dataclass
class BatchItem:
    """One input to analyse: its path, its name in the dataset and the stamp its outcome is recorded under."""

    path: Path
    name: str
    stamp: dict[str, Any]


@dataclass
class BatchPlan:
    """The inputs of a run: those to analyse now and those already finished under the same stamp."""

    todo: list[BatchItem]
    finished: list[BatchItem]


def make_plan(inputs: Sequence[Path], out_dir: Path, settings: BatchSettings, *, force: bool = False) -> BatchPlan:
    """Names and stamps for ``inputs``; a file whose partition and ``done`` record match its stamp is finished
    (unless ``force``). Failed files are always tried again."""
    from avemo.inference.batch import input_stamp, output_names

    analyzer = settings.analyzer()  # the models themselves load lazily: this is cheap
    names = output_names(list(inputs))
    todo, finished = [], []
    for path in inputs:
        item = BatchItem(Path(path), names[path], input_stamp(Path(path), analyzer, False))
        (finished if not force and store.is_finished(out_dir, item.name, item.stamp) else todo).append(item)
    return BatchPlan(todo, finished)


#: attempts at one file whose worker died before it is recorded as failed without another try
MAX_ATTEMPTS = 2


def analyze_item(analyzer: Any, item: BatchItem, out_dir: Path) -> dict[str, Any]:
    """Analyse one input into its partition and record its outcome; never raises for the input's sake.

    An input on which :data:`MAX_ATTEMPTS` workers already died (Ray restarts a dead worker and retries its
    file) is recorded as failed instead of being tried again.
    """
    from avemo.inference.batch import failure_message

    t0 = time.perf_counter()
    died = store.start_attempt(out_dir, item.name)
    if died >= MAX_ATTEMPTS:
        record = store.status_record(item.name, item.path, "failed",
                                     f"{item.path}: the worker analysing it died {died} times (a crash in native "
                                     "code, or out of memory)")
        store.write_marker(out_dir, record, item.stamp)
        return record
    try:
        timeline = analyzer.analyze(item.path)
        store.write_partition(out_dir, item.name, timeline)
        record = store.status_record(item.name, item.path, "done", seconds=time.perf_counter() - t0,
                                     windows=len(timeline))
    except Exception as exc:  # one bad file fails alone, whatever broke
        store.remove_partition(out_dir, item.name)
        record = store.status_record(item.name, item.path, "failed", failure_message(item.path, exc),
                                     seconds=time.perf_counter() - t0)
    store.write_marker(out_dir, record, item.stamp)
    return record


Progress = Callable[[dict[str, Any]], None]


def run_local(items: Sequence[BatchItem], out_dir: Path, settings: BatchSettings,
              on_file: Progress | None = None) -> list[dict[str, Any]]:
    """The files one after another in this process, with one analyzer (the plain folder mode's engine)."""
    analyzer = settings.analyzer()
    records = []
    for item in items:
        records.append(analyze_item(analyzer, item, out_dir))
        if on_file:
            on_file(records[-1])
    return records


class AnalyzeWorker:
    """A Ray Data map_batches class: one per actor, the models loaded once in ``__init__``."""

    def __init__(self, out_dir: str, models: dict[str, str], config: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.analyzer = BatchSettings(models, config).analyzer()
        self.analyzer.face_model  # noqa: B018 (load both networks now, before the first file)
        self.analyzer.voice_model  # noqa: B018

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import json

        records = [analyze_item(self.analyzer, BatchItem(Path(p), str(n), json.loads(s)), self.out_dir)
                   for p, n, s in zip(batch["path"], batch["file"], batch["stamp"])]
        return {k: [r[k] for r in records] for k in store.STATUS_COLUMNS}


@dataclass
class RaySettings:
    """How to reach Ray: ``address`` None starts a local Ray (``num_cpus`` CPUs, object store of
    ``object_store_mb``); an address (``auto``, ``ray://head:10001``, ``head:6379``) joins a running cluster.
    ``workers``: actors in the pool (default: every CPU Ray offers), one CPU each."""

    address: str | None = None
    workers: int | None = None
    num_cpus: int | None = None
    object_store_mb: int | None = None

    def init(self) -> bool:
        """Start or join Ray unless this process is already connected; True when this call connected."""
        try:
            import ray
            import ray.data
        except ImportError:
            raise AvemoError("--engine ray needs Ray: pip install 'avemo[distributed]'") from None
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines on the console
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": False}
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            store_bytes = self.object_store_mb * 1024 * 1024 if self.object_store_mb else None
            ray.init(address="local", num_cpus=self.num_cpus, object_store_memory=store_bytes, **kwargs)
        return True


def run_ray(items: Sequence[BatchItem], out_dir: Path, settings: BatchSettings, ray_settings: RaySettings,
            on_file: Progress | None = None) -> list[dict[str, Any]]:
    """The files on Ray Data with a fixed pool of :class:`AnalyzeWorker` actors; returns their status rows.

    Ray restarts a worker that dies and retries its file; after :data:`MAX_ATTEMPTS` deaths the file is recorded
    as failed (:func:`analyze_item`). A file Ray gave up on without a record gets one here; the rest go on.
    """
    import json

    import ray

    if not items:
        return []
    started = ray_settings.init()
    try:
        workers = ray_settings.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ctx = ray.data.DataContext.get_current()
        ctx.max_errored_blocks = -1  # a block Ray gives up on fails alone (recorded below)
        ctx.enable_progress_bars = False
        rows = [{"path": str(i.path.resolve()), "file": i.name, "stamp": json.dumps(i.stamp)} for i in items]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            AnalyzeWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(rows))),
            fn_constructor_kwargs={"out_dir": str(Path(out_dir).resolve()), "models": dict(settings.models),
                                   "config": dict(settings.config)},
            num_cpus=1)
        records = []
        for row in ds.iter_rows():
            record = {k: row[k] for k in store.STATUS_COLUMNS}
            records.append(record)
            if on_file:
                on_file(record)
    finally:
        if started:
            ray.shutdown()
    seen = {r["file"] for r in records}
    for item in items:
        if item.name not in seen:  # Ray gave up on it (e.g. the cluster lost its node)
            record = store.status_record(item.name, item.path, "failed",
                                         f"{item.path}: Ray gave up on it (its worker or node was lost)")
            store.write_marker(out_dir, record, item.stamp)
            records.append(record)
            if on_file:
                on_file(record)
    return records


@dataclass
class BatchResult:
    """What a run did: the records of the files analysed now, the names skipped as finished, the status table."""

    records: list[dict[str, Any]]
    skipped: list[str]
    status: Any
    seconds: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "done"]


def run_batch(inputs: Sequence[Path], out_dir: str | Path, settings: BatchSettings | None = None, *,
              engine: str = "local", ray_settings: RaySettings | None = None, force: bool = False,
              on_file: Progress | None = None) -> BatchResult:
    """Analyse ``inputs`` into ``out_dir`` (see :mod:`avemo.scale.store` for the layout) with ``engine``."""
    if engine not in ENGINES:
        raise AvemoError(f"engine must be one of {ENGINES}, got {engine!r}")
    settings = settings or BatchSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = make_plan(inputs, out_dir, settings, force=force)
    if engine == "ray":
        records = run_ray(plan.todo, out_dir, settings, ray_settings or RaySettings(), on_file)
    else:
        records = run_local(plan.todo, out_dir, settings, on_file)
    status = store.write_status_table(out_dir)
    return BatchResult(records, [i.name for i in plan.finished], status, time.perf_counter() - t0)
