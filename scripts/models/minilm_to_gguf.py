#!/usr/bin/env python3
"""Converts the packaged all-MiniLM-L6-v2 (safetensors + tokenizer.json) to a GGUF file that
llama.cpp runs as a BERT embedder with mean pooling (docs/rag.md, "Models").

Why our own converter: llama.cpp's convert_hf_to_gguf.py needs PyTorch, which this machine cannot
install at a sane cost. This script does what its `BertModel` class does for this one model, with
the `gguf` package (llama.cpp's own writer) and numpy only:
  * tensors renamed with gguf's BERT tensor map; 2-D weights as F16 (but the token-type embedding,
    which llama.cpp adds to F32 activations directly), norms and biases as F32;
    the pooler is dropped (sentence embeddings pool the last hidden states);
  * the WordPiece vocabulary in llama.cpp's "phantom space" spelling: a continuation loses its
    `##`, a word-initial token gains U+2581, control tokens ([CLS], [SEP], ...) stay as they are;
  * hyper-parameters from config.json, mean pooling from 1_Pooling/config.json, non-causal.
The output is deterministic (same input, same bytes): scripts/fetch-models pins its sha256, and
crates/rag's tests compare its embeddings with an independent numpy forward pass.

usage: minilm_to_gguf.py MODEL_DIR OUT.gguf
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format: u64 LE header length, JSON header, raw little-endian tensors."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + start : base + end], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


def main(model_dir: Path, out: Path) -> None:
    cfg = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    if cfg["architectures"] != ["BertModel"] or not pooling["pooling_mode_mean_tokens"]:
        sys.exit("not a mean-pooled BertModel")
    n_layers = cfg["num_hidden_layers"]

    w = gguf.GGUFWriter(str(out), "bert")
    w.add_name("all-MiniLM-L6-v2")
    w.add_license("apache-2.0")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(n_layers)
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in tok["added_tokens"] if a["special"]}
    types, spelled = [], []
    for i, t in enumerate(tokens):
        if i in special:
            types.append(gguf.TokenType.CONTROL)
            spelled.append(t)
        else:
            types.append(gguf.TokenType.NORMAL)
            spelled.append(t[2:] if t.startswith("##") else "\u2581" + t)
    w.add_token_type_count(cfg["type_vocab_size"])
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(spelled)
    w.add_token_types(types)
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    w.add_bos_token_id(ids["[CLS]"])
    w.add_eos_token_id(ids["[SEP]"])
    w.add_unk_token_id(ids["[UNK]"])
    w.add_sep_token_id(ids["[SEP]"])
    w.add_pad_token_id(ids["[PAD]"])
    w.add_mask_token_id(ids["[MASK]"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    tensors = read_safetensors(model_dir / "model.safetensors")
    for name in sorted(tensors):
        short = name[5:] if name.startswith("bert.") else name
        if short in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
            continue
        new = names.get_name(short, try_suffixes=(".weight", ".bias"))
        if new is None:
            sys.exit(f"no GGUF name for tensor {name}")
        data = tensors[name].astype(np.float32)
        # llama.cpp adds the token-type embedding to F32 activations directly: it must be F32.
        if data.ndim == 2 and new != "token_types.weight":
            data = data.astype(np.float16)
        w.add_tensor(new, data)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
