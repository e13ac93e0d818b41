"""Near-duplicate articles (syndicated copies, re-publications under a new headline) by MinHash
over word shingles of the body text, with LSH banding to find candidate pairs.

MinHash: Broder, "On the resemblance and containment of documents" (1997): the share of equal
minima under random hash permutations estimates the Jaccard similarity of two shingle sets.
Banding (Leskovec, Rajaraman and Ullman, Mining of Massive Datasets, ch. 3.4): with 32 bands of
4 rows a pair at Jaccard 0.7 becomes a candidate with probability 1-(1-0.7^4)^32 > 0.999, a pair
at 0.2 with about 0.05; candidates are then checked on the full signature.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

SHINGLE_WORDS = 5
PERMUTATIONS = 128
BANDS = 32
ROWS = PERMUTATIONS // BANDS
THRESHOLD = 0.7  # estimated Jaccard at or above which two texts are copies of one article
_PRIME = (1 << 61) - 1
_WORD = re.compile(r"\w+")
# Fixed seed: the same texts give the same signatures in every run and process.
_rng = np.random.default_rng(20040101)
_A = _rng.integers(1, 1 << 31, size=PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, 1 << 31, size=PERMUTATIONS, dtype=np.uint64)


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[int]:
    """32-bit hashes of the runs of `size` lower-cased words (the whole text if it is shorter).
    Words only: punctuation, spacing and case changes of a re-publication do not matter."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < size:
        return {zlib.crc32(" ".join(tokens).encode())} if tokens else set()
    return {zlib.crc32(" ".join(tokens[i : i + size]).encode()) for i in range(len(tokens) - size + 1)}


def signature(text: str) -> np.ndarray:
    """MinHash signature: for each permutation h(x) = (a·x + b) mod p, the minimum over the shingles.
    a, x < 2^31 and 2^32 keep a·x + b inside uint64, so no product wraps around."""
    values = np.fromiter(shingles(text), dtype=np.uint64)
    if len(values) == 0:
        return np.full(PERMUTATIONS, _PRIME, dtype=np.uint64)
    hashed = (values[:, None] * _A[None, :] + _B[None, :]) % np.uint64(_PRIME)
    return hashed.min(axis=0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    return float(np.mean(a == b))


def duplicate_groups(texts: Sequence[str], threshold: float = THRESHOLD) -> list[list[int]]:
    """Indexes of `texts` grouped so that copies share a group (transitively, by union-find);
    every index is in exactly one group, groups and members in first-seen order."""
    signatures = [signature(t) for t in texts]
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = {}
        for i, sig in enumerate(signatures):
            buckets.setdefault(sig[band * ROWS : (band + 1) * ROWS].tobytes(), []).append(i)
        for members in buckets.values():
            for x, i in enumerate(members):
                for j in members[x + 1 :]:
                    if find(i) != find(j) and similarity(signatures[i], signatures[j]) >= threshold:
                        parent[max(find(i), find(j))] = min(find(i), find(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
