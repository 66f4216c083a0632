"""ecg-eval finds the training run's prepared cache, or says why it prepares the data again."""

from __future__ import annotations

import json
import logging

from training.cli import _run_cache
from training.prepare import Source


def test_eval_uses_the_run_cache_or_says_why_not(tmp_path, caplog):
    sources = [Source("manifest", tmp_path / "m.csv")]
    folder = tmp_path / "runs" / "cache" / "k1"
    ckpt = {"data": {"cache": str(folder), "sources": [s.describe() for s in sources], "fingerprint": "abc"}}
    with caplog.at_level(logging.WARNING):
        assert _run_cache(ckpt, sources) is None
    assert "is gone" in caplog.text
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"fingerprint": "xyz"}), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _run_cache(ckpt, sources) is None
    assert "now holds other data" in caplog.text and "xyz" in caplog.text
    (folder / "meta.json").write_text(json.dumps({"fingerprint": "abc"}), encoding="utf-8")
    assert _run_cache(ckpt, sources) == folder
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # other data than the run's: the per-user cache, nothing to say
        assert _run_cache(ckpt, [Source("manifest", tmp_path / "other.csv")]) is None
        assert _run_cache({"data": {}}, sources) is None  # a checkpoint from before per-run caches
    assert caplog.text == ""
