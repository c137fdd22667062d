"""The search index kept in a file between processes, so a start with an unchanged knowledge
base loads it instead of analysing every chunk again.

Building ``SearchIndex`` costs about half a millisecond of CPU a chunk (language detection,
stemming, the typo index): 0.3 s for a thousand chunks in every ``triage --once`` and every
restart. Loading the same index from its pickle is a tenth of that. The file sits beside the
SQLite database (``<database>.kb-index``) and holds one index with its key: a hash over every
chunk the index was built from (ids, order, texts, sources and content hashes), over the
source of the modules that build and read it and the versions of numpy and the stemmers, so a
changed document, a removed one, a new chunker or a changed analysis all miss and the index is
built again. PostgreSQL keeps no file
(a replica has no folder beside its database); it builds as before.

Only the classes an index is made of are unpickled (``_Allowed``): a file that names anything
else is refused and the index is built, whoever wrote it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bot.knowledge import analysis, crosslingual, index, postings, spelling, terms, vocabulary
from bot.knowledge.index import ChunkRecord, SearchIndex

log = logging.getLogger(__name__)

# The modules whose code decides what an index holds and how it is read, and the libraries.
_BUILT_BY = (analysis, crosslingual, index, postings, spelling, terms, vocabulary)
_LIBRARIES = ("numpy", "snowballstemmer")


def load_or_build(path: Path | None, records: Sequence[ChunkRecord]) -> tuple[SearchIndex, bool]:
    """The index over ``records`` and whether it was built: loaded from ``path`` when stored
    there from these very chunks by this code, else built and stored there (no file when
    ``path`` is None)."""
    # The class as ``bot.knowledge.index`` names it now (a benchmark swaps in another ranking).
    kind = index.SearchIndex
    if path is None:
        return kind(records), True
    key = index_key(records)
    loaded = load(path, key)
    if loaded is not None and type(loaded) is kind:
        return loaded, False
    built = kind(records)
    save(path, key, built)
    return built, True


def index_key(records: Sequence[ChunkRecord]) -> str:
    """What an index built from ``records`` by this code is stored under."""
    digest = hashlib.sha256()
    for module in _BUILT_BY:
        digest.update(Path(str(module.__file__)).read_bytes())
    for table in crosslingual.table_files():
        digest.update(table.read_bytes())
    for library in _LIBRARIES:
        digest.update(f"{library}={metadata.version(library)}\n".encode())
    for record in records:
        for field in (
            str(record.id),
            record.document_id,
            str(record.seq),
            record.title,
            record.heading,
            record.text,
            record.source,
            record.content_hash,
        ):
            digest.update(field.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()


def load(path: Path, key: str) -> SearchIndex | None:
    """The index stored at ``path`` under ``key``; None when there is none, it was stored
    under another key, or the file cannot be read as one."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    stored_key, _, body = data.partition(b"\n")
    if stored_key != key.encode("ascii"):
        return None
    try:
        loaded = _Allowed(io.BytesIO(body)).load()
    except Exception as exc:  # noqa: BLE001 — any unreadable file means: build the index
        log.warning("knowledge: the stored index %s is unreadable (%s); building it", path, exc)
        return None
    return loaded if isinstance(loaded, SearchIndex) else None


def save(path: Path, key: str, built: SearchIndex) -> None:
    """Store ``built`` under ``key`` at ``path`` (replacing what was there, atomically); a
    folder that cannot be written, or an index that cannot be pickled, only costs the next start
    a build: storing never fails a search."""
    temporary: Path | None = None
    try:
        # A file of its own for each writer (processes, and threads of one), renamed into place.
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
        temporary = Path(name)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key.encode("ascii") + b"\n")
            pickle.dump(built, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except Exception as exc:  # noqa: BLE001 — the index in memory serves either way
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        log.warning("knowledge: cannot store the index at %s (%s)", path, exc)


# What a pickled ``SearchIndex`` is made of, and nothing else.
_ALLOWED = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("collections", "Counter"),
    ("collections", "defaultdict"),
    ("bot.knowledge.index", "ChunkRecord"),
    ("bot.knowledge.index", "SearchIndex"),
    ("bot.knowledge.postings", "Naming"),
    ("bot.knowledge.postings", "Postings"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _Allowed(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a search index")
        return super().find_class(module, name)
