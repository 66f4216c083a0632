"""Prepare step: read the datasets once, run every window through the signal contract, cache the result.

The cache is a folder with ``windows.npy`` (float16 ``[N, 12, T]``, memory-mappable), ``labels.npy``
(uint8 multi-hot ``[N, n_labels]`` over the catalogue, ancestors included: a record labelled 下壁心筋梗塞
is also 心筋梗塞), ``known.npy`` (uint8 ``[N, n_labels]``: 1 where the record's sources state the label,
present or absent; 0 = unknown, left out of the loss, the thresholds and the metrics) and ``meta.json``
(signal contract, label ids, per-window record key / source / fold / patient / start sample, label
counts, and every skipped record with its reason). The same ECG from several sources is cached once, with
the signal of the first source and the labels and known labels of all of them merged; an official fold wins
over a derived one. Copies are found by source key (``ptbxl:17`` from PTB-XL and from the Challenge's
``HR00017``) and by content (:mod:`.datasets.content`: a hash of the decoded samples, so a manifest's copy of a
PTB-XL file is one ECG too); every pair is written to ``duplicates.json`` (the training run copies it into its
run folder). A copy whose two folds are both given and fall in different splits (a fold-10 record copied into
a training manifest) is an error naming both paths: test data never leaks into training. Training epochs read the memory map instead of WFDB
files. A fingerprint of the sources, the signal contract and the
catalogue decides whether an existing cache can be reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.dsp.measure import measure
from edge.dsp.signal import SignalConfig, SignalError, iter_windows, preprocess
from edge.interpret.catalogue import Catalogue, load_catalogue

from .datasets import READERS, DatasetError, SkipLog, open_dataset
from .datasets.content import ContentIndex, content_hash
from .datasets.processed import check_compatible

__all__ = ["DUPLICATES_FILE", "MEASURED_KEYS", "PREPARE_VERSION", "Source", "measurement_dicts", "PreparedDataset", "prepare", "fingerprint", "default_cache_dir"]

logger = logging.getLogger(__name__)

DUPLICATES_FILE = "duplicates.json"  # every copy found (by key or content), beside meta.json and in the run folder
PREPARE_VERSION = 6  # 2: numpy frequency-domain filter+resample; 3: known-label mask, labels merged across sources
# 4: contract-7 measurements of each raw window (measurements.npy); 5: known labels independent of the values,
# Challenge axis classes dropped on PTB-XL records (training.datasets.known, .processed); 6: copies found by
# content too (duplicates.json)
MEASURED_KEYS = (
    "hr_bpm", "rr_irregularity", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg", "p_present",
    "sv1_mv", "rv5_mv", "rv6_mv", "sv1_rv5_mv", "limb_qrs_max_mv", "chest_qrs_max_mv",
)  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One dataset to read: its kind (a key of ``READERS``), path and reader options."""

    kind: str
    path: Path
    options: tuple[tuple[str, object], ...] = ()  # e.g. (("rate", 500),) - hashable for the fingerprint

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(Path(self.path).resolve()), "options": dict(self.options)}


def fingerprint(sources: Sequence[Source], config: SignalConfig, catalogue: Catalogue, **extra) -> str:
    """A hash of everything that determines the cache's content."""
    payload = {
        "version": PREPARE_VERSION,
        "sources": [s.describe() for s in sources],
        "signal": config.to_dict(),
        "labels": [(lb.id, sorted(lb.scp), sorted(lb.snomed), sorted(lb.parents)) for lb in catalogue.labels],
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_cache_dir(sources: Sequence[Source], config: SignalConfig) -> Path:
    """A per-user cache folder for these sources and this signal contract (``$ECG_CLIP_CACHE`` overrides the root)."""
    import os

    root = Path(os.environ.get("ECG_CLIP_CACHE", Path.home() / ".cache" / "ecg-clip-ja"))
    key = hashlib.sha256(json.dumps([[s.describe() for s in sources], config.to_dict()], sort_keys=True, default=str).encode())
    return root / "prepared" / key.hexdigest()[:16]


class PreparedDataset:
    """A cache folder written by :func:`prepare`: windows, multi-hot labels and per-window metadata."""

    def __init__(self, folder: str | Path, mmap: bool = True):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{self.folder}: not a prepared dataset (no meta.json)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.windows = np.load(self.folder / "windows.npy", mmap_mode="r" if mmap else None)
        self.labels = np.load(self.folder / "labels.npy")
        known = self.folder / "known.npy"
        self.known = np.load(known) if known.is_file() else np.ones_like(self.labels)
        # contract-7 measurements of each raw window (NaN = not measurable), columns MEASURED_KEYS
        self.measurement_keys: list[str] = self.meta.get("measurement_keys", list(MEASURED_KEYS))
        measured = self.folder / "measurements.npy"
        self.measurements = (
            np.load(measured)
            if measured.is_file()
            else np.full((len(self.labels), len(self.measurement_keys)), np.nan, dtype=np.float32)
        )
        self.signal = SignalConfig.from_dict(self.meta["signal"])
        self.label_ids: list[str] = self.meta["label_ids"]
        items = self.meta["windows"]
        self.folds = np.array([w["fold"] if w["fold"] is not None else 0 for w in items], dtype=np.int64)
        self.keys = [w["key"] for w in items]
        self.sources = [w["source"] for w in items]
        if len(self.windows) != len(self.labels) or len(self.labels) != len(items) or self.known.shape != self.labels.shape:
            raise DatasetError(f"{self.folder}: windows, labels and meta.json disagree in length")

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, folds: Sequence[int] | None = None, labelled: bool = True) -> np.ndarray:
        """Window indices in the given folds (all folds if None), optionally only labelled ones."""
        mask = np.ones(len(self), dtype=bool)
        if folds is not None:
            mask &= np.isin(self.folds, list(folds))
        if labelled:
            mask &= self.labels.any(axis=1)
        return np.flatnonzero(mask)

    def label_counts(self, idx: np.ndarray | None = None) -> dict[str, int]:
        lab = self.labels if idx is None else self.labels[idx]
        counts = lab.sum(axis=0)
        return {lid: int(c) for lid, c in zip(self.label_ids, counts, strict=True) if c}

    def known_counts(self, idx: np.ndarray | None = None) -> dict[str, int]:
        """Windows on which each label is known (present or stated absent)."""
        kn = self.known if idx is None else self.known[idx]
        return {lid: int(c) for lid, c in zip(self.label_ids, kn.sum(axis=0), strict=True)}


def _measured(x: np.ndarray, fs: float, leads, amplitudes: bool) -> np.ndarray:
    """The window's contract-7 measurements as float32 ``[len(MEASURED_KEYS)]`` (NaN = not measured).

    ``amplitudes=False`` (windows z-scored per lead by a third party) keeps only what timing gives: the
    axis and the voltages depend on the leads' true amplitudes and are NaN there.
    """
    m = measure(x, fs, leads)
    out = np.full(len(MEASURED_KEYS), np.nan, dtype=np.float32)
    for i, key in enumerate(MEASURED_KEYS):
        value = m.get(key)
        if value is None or (not amplitudes and (key.endswith("_mv") or key == "axis_deg")):
            continue
        out[i] = float(value)
    return out


def measurement_dicts(rows: np.ndarray, keys: Sequence[str]) -> list[dict]:
    """Cached measurement rows (``PreparedDataset.measurements[i]``) back to ``edge.dsp.measure`` dicts (NaN -> None)."""
    out = []
    for row in np.asarray(rows, dtype=np.float64):
        d: dict = {}
        for key, value in zip(keys, row, strict=True):
            if not np.isfinite(value):
                d[key] = None
            elif key in ("p_present", "rhythm_regular"):
                d[key] = bool(value >= 0.5)
            else:
                d[key] = float(value)
        out.append(d)
    return out


def _windows_of(record, config: SignalConfig, max_windows: int | None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(start, model input, measurements) of each window of a record."""
    if record.preprocessed:
        if record.signal.shape != config.input_shape:
            raise SignalError(f"preprocessed array of shape {record.signal.shape}, expected {config.input_shape}")
        x = record.signal.astype(np.float32)
        return [(0, x, _measured(x, config.fs, None, amplitudes=False))]
    spans = list(iter_windows(record.signal.shape[1], record.fs, config.window_s))
    if not spans:
        raise SignalError(f"record lasts {record.signal.shape[1] / record.fs:.2f} s, shorter than one window")
    if max_windows is not None:
        spans = spans[:max_windows]
    return [
        (
            a,
            preprocess(record.signal[:, a:b], record.fs, config, record.leads),
            _measured(record.signal[:, a:b], record.fs, record.leads, amplitudes=True),
        )
        for a, b in spans
    ]


def _merge(rows: list[int], record, hot: np.ndarray, known: np.ndarray, labels: list, knowns: list,
           items: list) -> None:
    """Merge a second source's labels of an ECG already cached (positives and known labels: union)."""
    for i in rows:
        labels[i] |= hot
        knowns[i] |= known
        item = items[i]
        item["labels"] = list(dict.fromkeys([*item["labels"], *record.labels]))
        item.setdefault("merged_from", []).append(record.source)
        if item.get("fold_derived") and not record.fold_derived and record.fold is not None:
            item.update(fold=record.fold, patient=record.patient, fold_derived=False)


def prepare(
    sources: Sequence[Source],
    out_dir: str | Path,
    config: SignalConfig | None = None,
    catalogue: Catalogue | None = None,
    on_error: str = "raise",
    max_windows_per_record: int | None = 6,
    include_unlabelled: bool = False,
    force: bool = False,
    progress: bool = True,
) -> PreparedDataset:
    """Read ``sources``, preprocess every window with the signal contract and cache them in ``out_dir``.

    Reuses an existing cache with the same fingerprint unless ``force``. The same ECG seen in two
    sources (by record key) is kept once, with the first source's signal and every source's labels and
    known labels merged. ``on_error="skip"`` counts bad records instead of raising; they are listed in
    ``meta.json``.
    """
    config = config or SignalConfig()
    catalogue = catalogue or load_catalogue()
    out = Path(out_dir)
    fp = fingerprint(sources, config, catalogue, max_windows=max_windows_per_record, unlabelled=include_unlabelled)
    meta_path = out / "meta.json"
    if meta_path.is_file() and not force:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") == fp:
            logger.info("reusing prepared dataset %s", out)
            return PreparedDataset(out)
    skips = SkipLog()
    windows: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    knowns: list[np.ndarray] = []
    measured: list[np.ndarray] = []
    items: list[dict] = []
    seen: dict[str, list[int]] = {}  # record key -> its window rows
    copies = ContentIndex()  # content hash -> first record; every later copy as a pair
    removed: set[int] = set()  # rows of training copies of held-out records (training.datasets.content)
    duplicates = 0
    dropped = 0  # positives (ancestors of stated labels) left unknown because the source cannot state them
    per_source: Counter = Counter()
    for source in sources:
        if source.kind not in READERS:
            raise DatasetError(f"unknown dataset kind {source.kind!r}")
        options = dict(source.options)
        if source.kind == "ptbxl_processed":
            check_compatible(config)
            options.setdefault("include_unlabelled", include_unlabelled)
        reader = open_dataset(source.kind, source.path, catalogue=catalogue, on_error=on_error, skips=skips, **options)
        iterator = reader
        if progress:
            from tqdm import tqdm

            iterator = tqdm(reader, total=len(reader), desc=f"prepare {source.kind}", unit="rec", leave=False)
        for record in iterator:
            hot = np.zeros(len(catalogue), dtype=np.uint8)
            ids = catalogue.expand(record.labels) if record.labels else []
            for lid in ids:
                hot[catalogue.index(lid)] = 1
            known = np.ones(len(catalogue), dtype=np.uint8)
            if record.known is not None:
                known[:] = 0
                for lid in record.known:
                    known[catalogue.index(lid)] = 1
            # A label the source cannot state is unknown even where it would follow from a stated child
            # (伝導障害 from a Challenge record's 右脚ブロック): known only where positive, it would teach the
            # model that it is always present. The known set depends on the source, never on the value.
            dropped += int((hot & ~known.astype(bool)).sum()) if record.known is not None else 0
            hot &= known
            digest = content_hash(record)
            verdict = copies.check(record, digest, record.key if record.key in seen else None)
            if verdict.merge_into is not None and verdict.merge_into in seen:  # the same ECG by key or samples
                duplicates += 1
                _merge(seen[verdict.merge_into], record, hot, known, labels, knowns, items)
                continue
            if verdict.skip:  # a source's own copy of a held-out record, in its training folds
                continue
            if verdict.drop_key is not None:  # this record is the held-out copy of one cached for training
                rows = seen.pop(verdict.drop_key)
                per_source[items[rows[0]]["source"]] -= 1
                removed.update(rows)
            try:
                wins = _windows_of(record, config, max_windows_per_record)
            except SignalError as exc:
                reader.fail(record.key, f"bad_signal: {exc}")
                continue
            copies.add(record, digest)
            seen[record.key] = list(range(len(items), len(items) + len(wins)))
            for start, win, meas in wins:
                windows.append(win.astype(np.float16))
                measured.append(meas)
                labels.append(hot.copy())
                knowns.append(known.copy())
                items.append(
                    {
                        "key": record.key,
                        "source": record.source,
                        "fold": record.fold,
                        "patient": record.patient,
                        "start": start,
                        "fs_raw": record.fs,
                        "labels": list(record.labels),
                        "fold_derived": record.fold_derived,
                    }
                )
            per_source[record.source] += 1
    if removed:
        keep = [i for i in range(len(items)) if i not in removed]
        windows, labels, knowns, measured, items = ([rows[i] for i in keep] for rows in (windows, labels, knowns, measured, items))
        logger.warning("%d window(s) of records whose copies are held out were dropped from training", len(removed))
    if not windows:
        raise DatasetError("no usable records in the given sources")
    out.mkdir(parents=True, exist_ok=True)
    arr = np.lib.format.open_memmap(out / "windows.npy", mode="w+", dtype=np.float16, shape=(len(windows), *config.input_shape))
    for i, w in enumerate(windows):
        arr[i] = w
    arr.flush()
    del arr
    lab = np.stack(labels)
    np.save(out / "labels.npy", lab)
    kn = np.stack(knowns)
    np.save(out / "known.npy", kn)
    np.save(out / "measurements.npy", np.stack(measured))
    meta = {
        "format": PREPARE_VERSION,
        "fingerprint": fp,
        "signal": config.to_dict(),
        "label_ids": list(catalogue.ids),
        "measurement_keys": list(MEASURED_KEYS),
        "sources": [s.describe() for s in sources],
        "n_windows": len(items),
        "records_per_source": dict(per_source),
        "duplicates_skipped": duplicates,
        "duplicates_by_content": copies.summary()["duplicates_by_content"],
        "leaks_dropped": copies.summary()["leaks_dropped"],
        "label_counts": {lid: int(c) for lid, c in zip(catalogue.ids, lab.sum(axis=0), strict=True) if c},
        "known_counts": {lid: int(c) for lid, c in zip(catalogue.ids, kn.sum(axis=0), strict=True)},
        "implied_positives_left_unknown": dropped,
        "skipped": [{"key": k, "reason": r} for k, r in skips.items],
        "skip_counts": skips.counts(),
        "windows": items,
    }
    (out / DUPLICATES_FILE).write_text(json.dumps(copies.summary(), ensure_ascii=False, indent=1), encoding="utf-8")
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    logger.info("prepared %d windows from %s into %s (%d skipped, %d duplicates)", len(items), dict(per_source), out, len(skips), duplicates)
    return PreparedDataset(out)
