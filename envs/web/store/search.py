"""BM25 search over the catalog (stdlib only): what the store's search box runs.

WebShop searches with Pyserini's BM25; this is the same ranking function on a small in-memory index. The
title is counted twice (it is what shoppers type), ties break by asin so results are deterministic.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from agentenv.envs.web.store.catalog import Product

_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _doc_tokens(p: Product) -> list[str]:
    fields = [p.title, p.title, " ".join(p.attributes), p.product_type, p.category, p.description, *p.bullets]
    return tokenize(" ".join(fields))


class SearchIndex:
    """An inverted index with BM25 scoring (k1, b as Lucene's defaults)."""

    def __init__(self, catalog: list[Product], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.asins = [p.asin for p in catalog]
        self.lengths: list[int] = []
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, p in enumerate(catalog):
            counts = Counter(_doc_tokens(p))
            self.lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((i, tf))
        self.avg_len = sum(self.lengths) / max(1, len(self.lengths))
        n = len(self.asins)
        self.idf = {t: math.log(1 + (n - len(ps) + 0.5) / (len(ps) + 0.5)) for t, ps in self.postings.items()}

    def scores(self, query: str) -> dict[int, float]:
        scores: dict[int, float] = {}
        for term in sorted(set(tokenize(query))):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for doc, tf in self.postings[term]:
                norm = tf + self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.avg_len)
                scores[doc] = scores.get(doc, 0.0) + idf * tf * (self.k1 + 1) / norm
        return scores

    def search(self, query: str, limit: int = 50) -> list[str]:
        """The asins of the best ``limit`` matches, best first (score, then asin, breaks ties)."""
        ranked = sorted(self.scores(query).items(), key=lambda kv: (-round(kv[1], 9), self.asins[kv[0]]))
        return [self.asins[i] for i, _ in ranked[:limit]]
