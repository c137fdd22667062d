"""An inverted index with BM25 scoring, vectorised: what ``bot.knowledge.index`` scores
documents and sections with."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75


class Postings:
    """An inverted index over units (documents or sections) with BM25F term frequencies.

    Built once, then frozen into arrays: each term keeps the units it occurs in and their
    saturated term frequency ``tf / (K1 + tf)`` (tf length-normalised), and its idf, so a
    question costs one vectorised add per question term — no pass over every unit in Python.
    """

    def __init__(self) -> None:
        self._weighted: list[dict[str, float]] = []
        self.size = 0
        self._postings: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = {}
        self._idf: dict[str, float] = {}
        self._unseen_idf = 0.0

    def add(self, weighted: dict[str, float]) -> None:
        self._weighted.append(weighted)

    def freeze(self) -> None:
        lengths = [sum(w.values()) for w in self._weighted]
        total = self.size = len(lengths)
        average = (sum(lengths) / total if total else 0.0) or 1.0
        collected: dict[str, tuple[list[int], list[float]]] = {}
        for unit, weighted in enumerate(self._weighted):
            length_norm = 1.0 - B + B * lengths[unit] / average
            for term, tf in weighted.items():
                norm = tf / length_norm
                units, saturated = collected.setdefault(term, ([], []))
                units.append(unit)
                saturated.append(norm / (K1 + norm))
        self._postings = {
            term: (np.array(units, dtype=np.intp), np.array(saturated, dtype=np.float64))
            for term, (units, saturated) in collected.items()
        }
        self._idf = {
            term: math.log(1.0 + (total - len(units) + 0.5) / (len(units) + 0.5))
            for term, (units, _) in collected.items()
        }
        self._unseen_idf = math.log(1.0 + (total + 0.5) / 0.5)
        self._weighted = []

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._unseen_idf)

    def score(self, terms: Sequence[tuple[str, float]]) -> npt.NDArray[np.float64]:
        """BM25F score per unit (0 where none of the terms occur)."""
        scores = np.zeros(self.size, dtype=np.float64)
        for term, weight in terms:
            posting = self._postings.get(term)
            if posting is not None:
                # A unit occurs once per term's posting, so fancy-index add is exact.
                scores[posting[0]] += self._idf[term] * weight * posting[1]
        return scores


class Naming:
    """Which units (documents' titles, sections' headings) name which terms."""

    def __init__(self, units: Sequence[Collection[str]]):
        named: dict[str, list[int]] = defaultdict(list)
        for unit, terms in enumerate(units):
            for term in terms:
                named[term].append(unit)
        self.size = len(units)
        self._units = {term: np.array(us, dtype=np.intp) for term, us in named.items()}

    def share(
        self, words: Sequence[Sequence[tuple[str, float]]], idf: Callable[[str], float]
    ) -> npt.NDArray[np.float64]:
        """Per unit, the idf-weighted share of ``words`` it names. A word is given as the terms
        that stand for it with their weights, and counts once, by the best one named."""
        out = np.zeros(self.size, dtype=np.float64)
        total = 0.0
        for members in words:
            best = np.zeros(self.size, dtype=np.float64)
            most = 0.0
            for term, weight in members:
                mass = idf(term) * weight
                most = max(most, mass)
                units = self._units.get(term)
                if units is not None:
                    best[units] = np.maximum(best[units], mass)
            out += best
            total += most
        return out / (total or 1.0)
