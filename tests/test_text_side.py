"""Text side glue: hierarchy-aware label texts and the parameter-free (frozen text space) tower."""

from __future__ import annotations

import pytest
import torch

from edge.interpret.catalogue import load_catalogue
from training.label_texts import label_texts
from training.text_side import TextConfig, build_text_tower, text_input_for, text_spec


def test_parents_mode_puts_ancestors_before_the_term():
    cat = load_catalogue()
    texts = dict(zip(cat.ids, label_texts(cat.labels, "ja+parents"), strict=True))
    imi = texts["IMI"]
    assert imi[0] == cat["IMI"].ja
    assert imi[1] == f"{cat['MI'].ja}・{cat['IMI'].ja}"
    # A label without parents has just its term.
    assert all(len(texts[lid]) == 1 for lid in cat.ids if not cat[lid].parents)


def test_frozen_text_space_tower_has_no_parameters():
    spec = text_spec(TextConfig(encoder="hashing", head="none"), embed_dim=64)
    assert spec["embed_dim"] == spec["text_dim"]  # the ECG side must embed into the text space
    tower = build_text_tower(spec)
    assert sum(p.numel() for p in tower.parameters()) == 0
    cat = load_catalogue()
    out = tower(text_input_for(spec, cat.labels[:5]))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_byte_encoder_needs_a_head():
    with pytest.raises(ValueError, match="projection head"):
        text_spec(TextConfig(encoder="byte", head="none"), embed_dim=64)
