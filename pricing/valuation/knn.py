"""Exact KNN-Shapley (Jia et al., "Efficient Task-Specific Data Valuation for Nearest Neighbor Algorithms",
VLDB 2019): the Shapley value of every training row for an unweighted K-nearest-neighbour classifier, in
O(M·N log N) for N training and M test rows instead of the 2^N subsets of the definition.

For one test point (x_t, y_t) the utility of a set S of training rows is

    u(S) = (1/K) · Σ_{j=1..min(K,|S|)} 1[y_{α_j(S)} = y_t],

α_j(S) being the j-th nearest row of S to x_t (Euclidean distance, ties broken by the lower training
index); for several test points it is the mean of theirs, and so are the Shapley values. Sorting all N rows
α_1..α_N by that order and writing m_i = 1[y_{α_i} = y_t], the values follow from the farthest row inwards:

    s_{α_N} = m_N · min(K, N) / (K·N)            (= m_N / N, the paper's base case, when N ≥ K)
    s_{α_i} = s_{α_{i+1}} + (m_i − m_{i+1}) / K · min(K, i) / i.

Pure numpy, no Django. Pooled products sum their rows' values per contributor with `values_by_owner`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A chunk of test rows holds its distances to every training row; this bounds that matrix.
CHUNK_BYTES = 64 * 2**20


def knn_shapley(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    k: int,
    chunk: int | None = None,
) -> np.ndarray:
    """The exact Shapley value of each training row for the K-nearest-neighbour utility above, averaged over
    the test rows: an array of N floats whose sum is u(all rows) − u(∅) = the mean over test points of the
    fraction of their K nearest rows that carry their label.

    ``x_train`` (N, F) and ``x_test`` (M, F) are finite feature matrices, ``y_train`` (N,) and ``y_test``
    (M,) labels of any one comparable type. Distances compare as the float64 Σ_f (x_f − t_f)², summed
    feature by feature; equal ones are ordered by training index (`_DistanceSorter` keeps that fast).
    ``chunk`` test rows are valued at a time (default: as many as keep their distance matrix within 64 MiB;
    the peak is a little over two such matrices); it changes memory and speed, not the result (but for the
    rounding of the final sums). Raises ValueError on empty, mis-shaped, non-finite or overflowing input and
    on k < 1 or chunk < 1.
    """
    train, test = _features(x_train, "x_train"), _features(x_test, "x_test")
    labels_train, labels_test = _labels(y_train, "y_train"), _labels(y_test, "y_test")
    n, m = train.shape[0], test.shape[0]
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"x_train has {train.shape[1]} features and x_test {test.shape[1]}: they must match")
    if labels_train.shape[0] != n:
        raise ValueError(f"y_train has {labels_train.shape[0]} labels for {n} training rows")
    if labels_test.shape[0] != m:
        raise ValueError(f"y_test has {labels_test.shape[0]} labels for {m} test rows")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer ≥ 1, not {k!r}")
    if chunk is None:
        chunk = max(1, CHUNK_BYTES // (8 * n))
    elif isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise ValueError(f"chunk must be an integer ≥ 1 or None, not {chunk!r}")
    codes_train, codes_test = _label_codes(labels_train, labels_test)

    ranks = np.arange(1, n + 1, dtype=np.float64)
    weights = np.minimum(k, ranks) / (k * ranks)  # min(K, i) / (K·i) for rank i = 1..N
    sorter = _DistanceSorter(train, test)
    rows = min(int(chunk), m)
    # Allocated once: fresh 64 MiB arrays would come from the kernel, page-faulted in, on every chunk.
    keys, steps_buffer = np.empty((rows, n), dtype=np.uint64), np.empty((rows, n), dtype=np.float64)
    totals = np.zeros(n, dtype=np.float64)
    for start in range(0, m, rows):
        stop = min(m, start + rows)
        order = sorter.order(start, stop, keys[: stop - start])
        matches = (codes_train[order] == codes_test[start:stop, None]).view(np.int8)
        # The recursion unrolled: s_i = s_N + Σ_{j=i..N−1} Δ_j with Δ_j = (m_j − m_{j+1})·w_j, i.e. s_N plus a
        # reversed cumulative sum, taken as (all Δ) − (forward cumulative sum of the Δ before i).
        steps = steps_buffer[: stop - start]
        steps[:, 0] = 0.0
        np.multiply(matches[:, :-1] - matches[:, 1:], weights[:-1], out=steps[:, 1:])
        np.cumsum(steps, axis=1, out=steps)
        last = matches[:, -1] * weights[-1] + steps[:, -1]
        np.subtract(last[:, None], steps, out=steps)
        totals += np.bincount(order.ravel(), weights=steps.ravel(), minlength=n)
    return totals / m


def values_by_owner(values: np.ndarray, owners: Sequence[str]) -> dict[str, float]:
    """The sum of ``values`` per owner (``owners[i]`` contributed row i), owners in order of first
    appearance: what each contributor of a pooled product brought. Shapley values add up, so each sum is
    the contributor's share of the total. Raises ValueError when the lengths differ or values is not 1-D."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be one-dimensional, not of shape {array.shape}")
    if array.shape[0] != len(owners):
        raise ValueError(f"{array.shape[0]} values for {len(owners)} owners")
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(owner, len(index)) for owner in owners), dtype=np.intp, count=len(owners))
    sums = np.bincount(codes, weights=array, minlength=len(index))
    return {owner: float(sums[code]) for owner, code in index.items()}


def _features(array: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(array, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows × features), not of shape {features.shape}")
    if features.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} holds a NaN or infinite value")
    return features


def _labels(array: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(array)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, not of shape {labels.shape}")
    return labels


def _label_codes(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small integers for the labels, equal where the labels are: comparing them costs a byte, not a string."""
    numbers = "biuf"
    if (train.dtype.kind in numbers) != (test.dtype.kind in numbers):
        # numpy would turn the numbers into strings, and 1 would never equal "1": say so instead
        raise ValueError(f"y_train ({train.dtype}) and y_test ({test.dtype}) must hold labels of one comparable type")
    try:
        _, inverse = np.unique(np.concatenate([train, test]), return_inverse=True)
    except TypeError as error:
        raise ValueError(f"y_train and y_test must hold labels of one comparable type: {error}") from error
    codes = inverse.reshape(-1).astype(np.min_scalar_type(inverse.max(initial=0)))
    return codes[: train.shape[0]], codes[train.shape[0] :]


class _DistanceSorter:
    """Orders the training rows by (distance, index) for a block of test rows: what a stable argsort of the
    exact distances gives, done with one matrix product and one plain sort.

    The distance that decides is the float64 Σ_f (x_f − t_f)², summed feature by feature: the same for equal
    rows wherever they sit, and whatever the chunk. It is too slow to compute for every pair, so the sort
    uses ‖a‖² + ‖b‖² − 2a·b (one matrix product, on data centred on the training mean) and packs its bits
    with the index into one integer key: non-negative float64s order as their bits do, so a plain sort of
    the keys (no argsort) orders by that distance, then index, with the low bits given over to the index.
    The product's rounding (and the dropped bits) can misorder only neighbours that come out closer than a
    bound on that error; every run of such neighbours is then re-sorted by the exact distance, then index.
    """

    STEP = 4  # rows at a time when looking for close neighbours, so that the scratch stays small

    def __init__(self, train: np.ndarray, test: np.ndarray) -> None:
        self.train, self.test = train, test
        n, features = train.shape
        centre = train.mean(axis=0)
        train_centred, test_centred = train - centre, test - centre
        train_norms = np.einsum("ij,ij->i", train_centred, train_centred)
        test_norms = np.einsum("ij,ij->i", test_centred, test_centred)
        # ‖x_t − x_i‖² as one product of augmented rows: [x_t, ‖x_t‖², 1] · [−2x_i, 1, ‖x_i‖²].
        self.train_augmented = np.hstack([-2.0 * train_centred, np.ones((n, 1)), train_norms[:, None]])
        self.test_augmented = np.hstack([test_centred, test_norms[:, None], np.ones((test.shape[0], 1))])
        # Both ways of computing a distance are within 6(F+3)u(‖t‖² + ‖x‖²) of the true one (u = 2⁻⁵³,
        # norms of the centred rows, the centring's own rounding included); two neighbours whose product
        # distances differ by more than twice that are in exact order. 16 instead of 12: a margin.
        self.tolerance = 16 * (features + 3) * 2.0**-53 * (test_norms + train_norms.max())
        if not np.isfinite(self.tolerance).all():
            raise ValueError("the features are too large: their squared distances overflow float64")
        self.bits = max(1, (n - 1).bit_length())

    def order(self, start: int, stop: int, keys: np.ndarray) -> np.ndarray:
        """The order of the training rows for test rows ``start:stop``, as int64s in ``keys`` (rows × N)."""
        rows, n = keys.shape
        distances = keys.view(np.float64)
        np.matmul(self.test_augmented[start:stop], self.train_augmented.T, out=distances)
        np.maximum(distances, 0.0, out=distances)  # rounding can leave a tiny one below zero
        low = np.uint64((1 << self.bits) - 1)
        high = np.uint64((1 << 63) - 1) ^ low  # also clears the sign of a −0.0
        keys &= high
        keys |= np.arange(n, dtype=np.uint64)
        keys.sort(axis=1)
        close = self._close_neighbours(keys, self.tolerance[start:stop], high)
        keys &= low
        order = keys.view(np.int64)
        if close.any():
            self._sort_runs(order, close, start)
        return order

    def _close_neighbours(self, keys: np.ndarray, tolerance: np.ndarray, high: np.uint64) -> np.ndarray:
        """close[r, p]: sorted neighbours p and p+1 might be misordered. A key holds its distance rounded down
        by less than 2^(bits − 52) of itself (doubled below, a margin): the gap it hides grows by that much."""
        rows, n = keys.shape
        close = np.empty((rows, n - 1), dtype=bool)
        width = min(self.STEP, rows)
        kept, gap = np.empty((width, n), dtype=np.uint64), np.empty((width, n - 1), dtype=np.float64)
        limit = np.empty((width, n - 1), dtype=np.float64)
        for first in range(0, rows, self.STEP):
            last = min(rows, first + self.STEP)
            size = last - first
            np.bitwise_and(keys[first:last], high, out=kept[:size])
            rounded = kept[:size].view(np.float64)
            np.subtract(rounded[:, 1:], rounded[:, :-1], out=gap[:size])
            np.multiply(rounded[:, :-1], 2.0 ** (self.bits - 51), out=limit[:size])
            limit[:size] += tolerance[first:last, None]
            np.less_equal(gap[:size], limit[:size], out=close[first:last])
        return close

    def _sort_runs(self, order: np.ndarray, close: np.ndarray, start: int) -> None:
        """Sort every run of close neighbours by (exact distance, index), in place, in one lexsort; the work
        is in proportion to the close pairs, not to the chunk."""
        n = order.shape[1]
        row, column = np.divmod(np.flatnonzero(close), n - 1)
        left = row * n + column  # the flat position of the first of each close pair
        positions = np.union1d(left, left + 1)
        runs = np.cumsum(~np.isin(positions, left + 1))  # a run starts where a member is not joined to the one before
        indexes = order.reshape(-1)[positions]
        differences = self.train[indexes] - self.test[start + positions // n]
        exact = np.zeros(len(positions))
        for feature in differences.T:  # feature by feature: the same sum for the same pair, always
            exact += feature * feature
        np.put(order, positions, indexes[np.lexsort((indexes, exact, runs))])
