"""Labelled ECGs per source and per label, before and after reading every label the data holds.

*Before*: the readers as they were (PTB-XL SCP codes without ``heart_axis``; the preprocessed PTB-XL set
only where ``scp_codes`` exist; Challenge 2021). *After*: PTB-XL with ``heart_axis``, the preprocessed
set with its Challenge 2020 labels, Challenge 2021 and the Challenge 2020 records of ``challenge2020/``.
Records are merged by ECG (record key) as the prepare step does; a label counts once per ECG, with its
ancestors where the source can state them (as in training). *Known* is the number of ECGs whose sources state the label (present or
absent): the loss, the thresholds and the metrics see only those.

    python bench/bench_labels.py --data ../shared/data        # writes the "bench_labels" section
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import REPO, write_section  # noqa: E402
from edge.interpret.catalogue import load_catalogue  # noqa: E402
from training.datasets import open_dataset  # noqa: E402

BEFORE = [("ptbxl", "ptbxl", {"heart_axis": False}), ("ptbxl_processed", "ptbxl_processed", {"challenge_labels": False}),
          ("cinc2021", "cinc2021", {})]
AFTER = [("ptbxl", "ptbxl", {}), ("ptbxl_processed", "ptbxl_processed", {}), ("cinc2021", "cinc2021", {}),
         ("challenge2020", "challenge2020", {})]


def read(data: Path, sources, mask: bool = True) -> tuple[dict, Counter]:
    """ECG key -> (labels expanded, known or None, first source); records per source."""
    cat = load_catalogue()
    ecgs: dict[str, list] = {}
    per_source: Counter = Counter()
    for kind, folder, options in sources:
        for r in open_dataset(kind, data / folder, **options):
            if not r.labels:
                continue
            per_source[kind] += 1
            known = set(cat.ids) if r.known is None or not mask else set(r.known)
            labels = set(cat.expand(r.labels)) & known  # as the prepare step: unstatable ancestors unknown
            if r.key in ecgs:
                ecgs[r.key][0] |= labels
                ecgs[r.key][1] |= known
            else:
                ecgs[r.key] = [labels, known, kind]
    return ecgs, per_source


def table(before: dict, after: dict, src_before: Counter, src_after: Counter) -> str:
    cat = load_catalogue()
    pos_b = Counter(lb for v in before.values() for lb in v[0])
    pos_a = Counter(lb for v in after.values() for lb in v[0])
    known_a = Counter(lb for v in after.values() for lb in v[1])
    lines = ["| source | labelled records before | after |", "|---|---|---|"]
    for kind in dict.fromkeys([*src_before, *src_after]):
        lines.append(f"| {kind} | {src_before.get(kind, 0)} | {src_after.get(kind, 0)} |")
    lines.append(f"| **ECGs after merging by record** | **{len(before)}** | **{len(after)}** |")
    lines += ["", "| label | | ECGs with it before | after | known after (of "
              f"{len(after)}) |", "|---|---|---|---|---|"]
    for lb in cat.labels:
        b, a = pos_b.get(lb.id, 0), pos_a.get(lb.id, 0)
        if a or b:
            mark = " **+**" if a > b else ""
            lines.append(f"| {lb.id} | {lb.ja} | {b} | {a}{mark} | {known_a.get(lb.id, 0)} |")
    empty = [lb.id for lb in cat.labels if not pos_a.get(lb.id)]
    lines.append(f"\nLabels without any positive ECG after: {len(empty)} ({', '.join(empty)}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    data = Path(args.data)
    t0 = time.monotonic()
    before, src_b = read(data, BEFORE, mask=False)  # no known-label mask before
    after, src_a = read(data, AFTER)
    body = ["## Labels the data holds (`bench/bench_labels.py`)", "",
            f"`python bench/bench_labels.py --data {args.data}` ({time.monotonic() - t0:.0f} s). " + __doc__.split("\n\n")[1]
            .replace("\n", " "), "", table(before, after, src_b, src_a)]
    write_section(Path(args.out), "bench_labels", "\n".join(body))
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
