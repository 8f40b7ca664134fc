#!/usr/bin/env python3
"""Reference values for crates/rag's known-answer tests, computed WITHOUT llama.cpp:

* all-MiniLM-L6-v2: token ids from Hugging Face `tokenizers` reading the packaged tokenizer.json,
  and sentence embeddings from a plain numpy BERT forward pass over the packaged safetensors
  (exact erf GELU, mean pooling, L2 normalisation: what sentence-transformers does);
* SmolLM2-135M-Instruct: token ids from Hugging Face `tokenizers`, with a byte-level BPE built
  from the vocabulary and merges stored in the GGUF file (read with the `gguf` package) and
  SmolLM2's pre-tokenizer (single digits, then GPT-2 byte-level).

The output, reference.json, is committed; the Rust tests compare llama.cpp's tokens and
embeddings with it. Re-run after a model change:
  python make_reference.py MINILM_DIR SMOLLM2.gguf > reference.json
(venv: gguf==0.19.0 numpy tokenizers)
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, decoders

SENTENCES = [
    "The supplier may terminate this agreement with 45 days' written notice.",
    "Quarterly revenue of the Oslo branch rose to 1.2 million euros.",
    "Bonjour, où est la gare?",
    "A short one.",
    "Tabs\tand  double  spaces, numbers 12345 and symbols: #@%!",
]


def safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + s : 8 + n + e], dtype=np.float32).reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


erf = np.vectorize(math.erf)


def bert_embed(t, cfg, ids):
    p = lambda k: t[k]
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    x = p("embeddings.word_embeddings.weight")[ids] + p("embeddings.position_embeddings.weight")[:n] + p("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        L = f"encoder.layer.{i}."
        lin = lambda h, name: h @ p(L + name + ".weight").T + p(L + name + ".bias")
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        a = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(x + lin(ctx, "attention.output.dense"), p(L + "attention.output.LayerNorm.weight"), p(L + "attention.output.LayerNorm.bias"), eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(x + lin(h, "output.dense"), p(L + "output.LayerNorm.weight"), p(L + "output.LayerNorm.bias"), eps)
    e = x.mean(0)
    return e / np.linalg.norm(e)


def smollm2_tokenizer(gguf_path):
    r = gguf.GGUFReader(gguf_path)
    f = r.fields
    text = lambda field, i: bytes(field.parts[field.data[i]]).decode("utf-8")
    toks = f["tokenizer.ggml.tokens"]
    merges = f["tokenizer.ggml.merges"]
    vocab = {text(toks, i): i for i in range(len(toks.data))}
    merge_pairs = [tuple(text(merges, i).split(" ", 1)) for i in range(len(merges.data))]
    tk = Tokenizer(models.BPE(vocab, merge_pairs))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    return tk


def main(minilm_dir, smollm2_gguf):
    minilm_dir = Path(minilm_dir)
    cfg = json.loads((minilm_dir / "config.json").read_text())
    t = safetensors(minilm_dir / "model.safetensors")
    wp = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    # The packaged tokenizer.json pads to 128; one unpadded sentence needs no attention mask.
    wp.no_padding()
    wp.no_truncation()
    bpe = smollm2_tokenizer(smollm2_gguf)
    out = {"minilm": [], "smollm2": []}
    for s in SENTENCES:
        ids = wp.encode(s).ids
        out["minilm"].append({"text": s, "ids": ids, "embedding": [round(float(v), 6) for v in bert_embed(t, cfg, ids)]})
        out["smollm2"].append({"text": s, "ids": bpe.encode(s, add_special_tokens=False).ids})
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
