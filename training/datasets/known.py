"""Which labels a record's source can state: the per-record *known* label set.

A source only states what its vocabulary can say. PTB-XL's SCP-ECG statements never state an axis
deviation (that is the separate ``heart_axis`` column, often empty); the PhysioNet/CinC Challenge 2020
labels of the preprocessed PTB-XL records and of some Challenge records give only the Challenge's 27
scored classes. A label outside a record's vocabulary is *unknown* for that record: neither a positive
nor a negative. The loss, the thresholds and the metrics leave unknown labels out.

The known set of a record is its source's stated labels (and its own labels, which a source states by
definition), plus every parent whose children are all known (a source that states 完全右脚ブロック and
不完全右脚ブロック also says whether there is a 右脚ブロック), repeated until nothing changes. It depends on
the source, never on the labels' values: an ancestor of a positive that the source cannot state (伝導障害
above a Challenge record's 右脚ブロック) stays unknown, and the prepare step drops it from the targets,
because a label known only where it is present teaches the model that it is always present.
``Record.known = None`` means every label is known (a hospital manifest: what is not listed is absent).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.interpret.catalogue import Catalogue

__all__ = [
    "SCORED_2020",
    "AXIS_LABELS",
    "scp_vocabulary",
    "snomed_vocabulary",
    "known_labels",
]

# The 27 scored classes of the PhysioNet/CinC Challenge 2020 (Perez Alday et al. 2020), as SNOMED CT codes
# (three pairs were scored as equivalent: 713427006/59118001, 284470004/63593006, 427172004/17338001).
SCORED_2020 = frozenset(
    {
        "270492004",
        "164889003",
        "164890007",
        "426627000",
        "713427006",
        "713426002",
        "445118002",
        "39732003",
        "164909002",
        "251146004",
        "698252002",
        "10370003",
        "284470004",
        "427172004",
        "164947007",
        "111975006",
        "164917005",
        "47665007",
        "59118001",
        "427393009",
        "426177001",
        "426783006",
        "427084000",
        "63593006",
        "164934002",
        "59931005",
        "17338001",
    }
)

AXIS_LABELS = ("LAD", "RAD")  # what PTB-XL's heart_axis column states (with their parent AXIS)


def scp_vocabulary(catalogue: Catalogue) -> frozenset[str]:
    """Labels that some PTB-XL SCP-ECG statement maps to."""
    return frozenset(lb.id for lb in catalogue.labels if lb.scp)


def snomed_vocabulary(catalogue: Catalogue, codes: Iterable[str] | None = None) -> frozenset[str]:
    """Labels that a SNOMED CT code maps to; ``codes`` limits the vocabulary (e.g. :data:`SCORED_2020`)."""
    if codes is None:
        return frozenset(lb.id for lb in catalogue.labels if lb.snomed)
    out = set()
    for code in codes:
        label = catalogue.from_snomed(code)
        if label is not None:
            out.add(label.id)
    return frozenset(out)


def _children(catalogue: Catalogue) -> dict[str, tuple[str, ...]]:
    kids: dict[str, list[str]] = {lb.id: [] for lb in catalogue.labels}
    for lb in catalogue.labels:
        for parent in lb.parents:
            kids[parent].append(lb.id)
    return {k: tuple(v) for k, v in kids.items()}


def known_labels(
    catalogue: Catalogue, stated: Iterable[str], positives: Iterable[str] = ()
) -> frozenset[str]:
    """The closure described in the module docstring: stated labels, the record's own labels (not their
    ancestors), and parents whose children are all known."""
    known = set(stated) | {catalogue[p].id for p in positives}
    kids = _children(catalogue)
    changed = True
    while changed:
        changed = False
        for parent, children in kids.items():
            if parent not in known and children and all(c in known for c in children):
                known.add(parent)
                changed = True
    return frozenset(known)
