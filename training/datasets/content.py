"""Copies of one ECG found by their samples, not only by their source keys.

A hospital manifest may list copies of PTB-XL files (another folder, another format), and a copy of a
test-fold record placed in a training manifest leaks the test data into training. Source keys
(``ptbxl:17``) cannot see that; the samples can. :func:`content_hash` hashes the decoded signal at its own
sampling rate: the independent leads (I, II, V1-V6 when present, so an 8-channel copy of a 12-lead record
matches; otherwise every channel in order), cast to float32 mV and quantised to 1 µV integers (the int16
resolution of PTB-XL and most carts), with the rate and the length. Two readers of the same file, a WFDB
record and its ``.npy``/cart-format copy, give the same hash; any change of a sample beyond 0.5 µV, of the
rate or of the length gives another. Preprocessed (already z-scored) records are hashed as stored, apart.

:class:`ContentIndex` is what the prepare step keeps while it reads: the first record of each hash, and
every later copy as a pair (written to ``duplicates.json`` beside the cache and in the run folder). A copy
is kept once. When its two folds are both given (official folds, a manifest's split or fold column) and fall
in different splits, the run must not train on test data:

- copies from two different sources (a fold-10 PTB-XL record copied into a training manifest) are an error
  naming both paths: the user's data is wrong and the user can fix it;
- copies inside one source's own official folds (PTB-XL itself holds records with identical samples, e.g.
  ecg_id 145 and 463 under two patient ids) cannot be fixed by the user: the copy in the held-out split is
  kept (test over validation over training) and the other is dropped, counted as ``leaks_dropped``.

A derived fold (hashed from an id) follows the other copy's fold instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from edge.dsp.signal import EIGHT_CHANNEL_LEADS, SignalError, canonical_lead_name

from .base import DatasetError, Record

__all__ = ["content_hash", "split_of", "ContentIndex", "DuplicatePair", "Verdict"]

UV_PER_MV = 1000.0
_HELD_OUT = {"train": 0, "unassigned": 0, "val": 1, "test": 2}


def content_hash(record: Record) -> str:
    """sha256 (hex, 32 characters) of the record's samples; see the module docstring."""
    x = np.asarray(record.signal, dtype=np.float32)
    if record.preprocessed:
        body = np.ascontiguousarray(x.astype(np.float16)).tobytes()
        head = f"preprocessed|{x.shape}"
    else:
        rows = list(range(x.shape[0]))
        try:
            names = [canonical_lead_name(str(n)) for n in record.leads]
        except SignalError:
            names = []
        if names and all(lead in names for lead in EIGHT_CHANNEL_LEADS):
            rows = [names.index(lead) for lead in EIGHT_CHANNEL_LEADS]
        q = np.round(x[rows] * np.float32(UV_PER_MV)).astype(np.int64)
        body = np.ascontiguousarray(q).tobytes()
        head = f"{float(record.fs):.6g}|{len(rows)}x{x.shape[1]}"
    return hashlib.sha256(head.encode() + b"|" + body).hexdigest()[:32]


def split_of(fold: int | None) -> str:
    """``train`` (folds 1-8), ``val`` (9) or ``test`` (10); ``unassigned`` without a fold."""
    if fold is None:
        return "unassigned"
    return "test" if fold == 10 else "val" if fold == 9 else "train"


def _where(record: Record) -> dict:
    return {
        "key": record.key,
        "source": record.source,
        "path": str(record.meta.get("path") or record.key),
        "fold": record.fold,
        "split": split_of(record.fold),
        "fold_derived": bool(record.fold_derived),
    }


@dataclass
class DuplicatePair:
    """A later record that is a copy of an earlier one: by ``key`` (same source key) or ``content``."""

    kept: dict
    copy: dict
    how: str
    content_hash: str
    dropped: str = "copy"  # which one is not used: "copy" (merged into the kept one or dropped) or "kept"

    def to_dict(self) -> dict:
        return {"how": self.how, "content_hash": self.content_hash, "kept": self.kept, "copy": self.copy,
                "dropped": self.dropped}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """What to do with a record: merge it into ``merge_into``, ``skip`` it, or cache it (dropping ``drop_key``)."""

    merge_into: str | None = None
    skip: bool = False
    drop_key: str | None = None


@dataclass
class ContentIndex:
    """First record of every content hash; later copies as :class:`DuplicatePair`."""

    first: dict[str, dict] = field(default_factory=dict)  # hash -> where the first record came from
    key_of: dict[str, str] = field(default_factory=dict)  # hash -> key of the first record
    pairs: list[DuplicatePair] = field(default_factory=list)

    def add(self, record: Record, digest: str) -> None:
        """Remember a record that was cached (call after its windows were cached); it replaces a dropped one."""
        self.first[digest] = _where(record)
        self.key_of[digest] = record.key

    def check(self, record: Record, digest: str, same_key_of: str | None = None) -> Verdict:
        """What the prepare step does with ``record`` (see the module docstring); raises on a user's leak.

        ``same_key_of``: the key already seen under this record's own key (a source-key duplicate): merged,
        recorded as such.
        """
        if same_key_of is not None:
            kept = self.first.get(digest) or {"key": same_key_of}
            self.pairs.append(DuplicatePair(kept, _where(record), "key", digest))
            return Verdict(merge_into=same_key_of)
        if digest not in self.first:
            return Verdict()
        kept, copy = self.first[digest], _where(record)
        if kept["fold_derived"] or copy["fold_derived"] or kept["split"] == copy["split"]:
            self.pairs.append(DuplicatePair(kept, copy, "content", digest))
            return Verdict(merge_into=self.key_of[digest])
        if kept["source"] != copy["source"] or copy["source"] == "manifest":  # the user's folds: fix them
            where = "train" if "train" in (kept["split"], copy["split"]) else copy["split"]
            raise DatasetError(
                f"the same ECG is in two splits: {kept['path']} ({kept['split']}, fold {kept['fold']}) and "
                f"{copy['path']} ({copy['split']}, fold {copy['fold']}) have identical samples; remove the copy "
                f"from the {where} data"
            )
        if _HELD_OUT[copy["split"]] > _HELD_OUT[kept["split"]]:  # the new copy is the held-out one
            self.pairs.append(DuplicatePair(kept, copy, "content_across_splits", digest, dropped="kept"))
            return Verdict(drop_key=self.key_of[digest])
        self.pairs.append(DuplicatePair(kept, copy, "content_across_splits", digest, dropped="copy"))
        return Verdict(skip=True)

    def summary(self) -> dict:
        by = {"key": 0, "content": 0, "content_across_splits": 0}
        for p in self.pairs:
            by[p.how] += 1
        return {
            "duplicates_by_key": by["key"],
            "duplicates_by_content": by["content"] + by["content_across_splits"],
            "leaks_dropped": by["content_across_splits"],  # one source's own copies in two splits
            "pairs": [p.to_dict() for p in self.pairs],
        }
