"""KNN-Shapley checked against the Shapley value computed from its definition: every subset of a few
training rows, weighted |S|!(N−|S|−1)!/N!, under the same K-nearest-neighbour utility."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.valuation.knn import knn_shapley, values_by_owner


def _utility(members: list[int], distances: np.ndarray, matches: np.ndarray, k: int) -> float:
    """(1/K) · the labels matched among the K nearest members, ties to the lower index."""
    nearest = sorted(members, key=lambda i: (distances[i], i))[:k]
    return sum(float(matches[i]) for i in nearest) / k


def _brute_force(x_train, y_train, x_test, y_test, k: int) -> np.ndarray:
    n = len(x_train)
    values = np.zeros(n)
    for point, label in zip(x_test, y_test, strict=True):
        distances = ((x_train - point) ** 2).sum(axis=1)  # exact for the small-integer data below
        matches = y_train == label
        utility = [_utility([i for i in range(n) if mask >> i & 1], distances, matches, k) for mask in range(2**n)]
        for i in range(n):
            for mask in range(2**n):
                if not mask >> i & 1:
                    size = bin(mask).count("1")
                    weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                    values[i] += weight * (utility[mask | 1 << i] - utility[mask])
    return values / len(x_test)


def _utility_of_all(x_train, y_train, x_test, y_test, k: int) -> float:
    totals = []
    for point, label in zip(x_test, y_test, strict=True):
        distances = ((x_train - point) ** 2).sum(axis=1)
        nearest = np.lexsort((np.arange(len(x_train)), distances))[:k]
        totals.append((y_train[nearest] == label).sum() / k)
    return float(np.mean(totals))


@pytest.mark.parametrize("seed", range(12))
def test_it_equals_the_shapley_value_by_subset_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m, k = int(rng.integers(1, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if seed % 2:  # continuous features: no ties
        x_train, x_test = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
    else:  # a small grid: many equal distances, broken by training index
        x_train, x_test = rng.integers(-2, 3, (n, 2)).astype(float), rng.integers(-2, 3, (m, 2)).astype(float)
    y_train, y_test = rng.integers(0, 3, n), rng.integers(0, 3, m)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    np.testing.assert_allclose(values, _brute_force(x_train, y_train, x_test, y_test, k), rtol=0, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3, 10, 500])
def test_it_adds_up_to_the_utility_of_all_rows(k: int) -> None:
    rng = np.random.default_rng(k)
    x_train, x_test = rng.normal(size=(300, 4)), rng.normal(size=(40, 4))
    y_train, y_test = rng.integers(0, 3, 300), rng.integers(0, 3, 40)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    assert values.sum() == pytest.approx(_utility_of_all(x_train, y_train, x_test, y_test, k), abs=1e-9)


def test_it_gives_a_duplicated_row_the_value_of_its_twin() -> None:
    # Continuous features: the twins tie only with each other, so they are neighbours in every order and the
    # index tie-break cannot tell them apart.
    rng = np.random.default_rng(7)
    x_train, y_train = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    x_train, y_train = np.vstack([x_train, x_train[17]]), np.append(y_train, y_train[17])
    x_test, y_test = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    values = knn_shapley(x_train, y_train, x_test, y_test, k=5)
    assert values[17] == pytest.approx(values[-1], abs=1e-15)
    assert values[17] != 0


def test_it_gives_the_same_values_whatever_the_chunk() -> None:
    rng = np.random.default_rng(3)
    x_train, x_test = rng.integers(-3, 4, (500, 2)).astype(float), rng.normal(size=(37, 2))
    x_test[::3] = x_train[:13]  # test points on training rows: zero distances among many ties
    y_train, y_test = rng.integers(0, 2, 500), rng.integers(0, 2, 37)
    expected = knn_shapley(x_train, y_train, x_test, y_test, k=4)
    for chunk in (1, 5, 36, 37, 1000):
        actual = knn_shapley(x_train, y_train, x_test, y_test, k=4, chunk=chunk)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def _recursion(x_train, y_train, x_test, y_test, k: int) -> np.ndarray:
    """The paper's recursion as a loop, over a stable argsort of each test point's distances."""
    n = len(x_train)
    values = np.zeros(n)
    for point, label in zip(x_test, y_test, strict=True):
        order = np.argsort(((x_train - point) ** 2).sum(axis=1), kind="stable")
        matches = (y_train[order] == label).astype(float)
        value = matches[-1] * min(k, n) / (k * n)
        values[order[-1]] += value
        for i in range(n - 1, 0, -1):  # rank i, 1-based, is position i − 1
            value += (matches[i - 1] - matches[i]) / k * min(k, i) / i
            values[order[i - 1]] += value
    return values / len(x_test)


def test_it_orders_near_ties_by_their_exact_distance() -> None:
    # Three distances a few ulps apart, farthest first: they agree in all the bits the sort key keeps (64 rows
    # leave the 6 lowest to the index), so the key alone would order them by index, the wrong way round.
    ulp = np.finfo(float).eps
    x_train = np.concatenate([[1 + 4 * ulp, 1 + 2 * ulp, 1.0], np.linspace(10, 20, 61)])[:, None]
    y_train = np.arange(64) % 2
    kept = (x_train[:3, 0] ** 2).view(np.uint64) >> np.uint64(6)
    assert len(set(x_train[:3, 0] ** 2)) == 3 and len(set(kept)) == 1
    x_test, y_test = np.zeros((2, 1)), np.array([0, 1])
    for k in (1, 2, 5):
        values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
        np.testing.assert_allclose(values, _recursion(x_train, y_train, x_test, y_test, k), rtol=0, atol=1e-12)


def test_it_agrees_with_the_recursion_written_as_a_loop() -> None:
    rng = np.random.default_rng(11)
    x_train, x_test = rng.integers(-3, 4, (400, 2)).astype(float), rng.integers(-3, 4, (25, 2)).astype(float)
    y_train, y_test = rng.integers(0, 3, 400), rng.integers(0, 3, 25)
    for k in (1, 7, 400, 600):
        values = knn_shapley(x_train, y_train, x_test, y_test, k=k, chunk=6)
        np.testing.assert_allclose(values, _recursion(x_train, y_train, x_test, y_test, k), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda n: st.tuples(
            st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=n, max_size=n),
            st.lists(st.integers(0, 2), min_size=n, max_size=n),
        )
    ),
    st.lists(st.tuples(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), st.integers(0, 2)), min_size=1, max_size=3),
    st.integers(1, 5),
)
def test_it_matches_the_definition_on_any_small_grid(train, test, k: int) -> None:
    x_train, y_train = np.array(train[0], dtype=float), np.array(train[1])
    x_test, y_test = np.array([p for p, _ in test], dtype=float), np.array([label for _, label in test])
    values = knn_shapley(x_train, y_train, x_test, y_test, k=k)
    np.testing.assert_allclose(values, _brute_force(x_train, y_train, x_test, y_test, k), rtol=0, atol=1e-9)
    assert values.sum() == pytest.approx(_utility_of_all(x_train, y_train, x_test, y_test, k), abs=1e-9)


def test_it_takes_labels_of_any_one_type() -> None:
    x_train, x_test = np.arange(6.0).reshape(3, 2), np.zeros((2, 2))
    by_number = knn_shapley(x_train, np.array([0, 1, 0]), x_test, np.array([1, 0]), k=2)
    by_name = knn_shapley(x_train, np.array(["cat", "dog", "cat"]), x_test, np.array(["dog", "cat"]), k=2)
    np.testing.assert_array_equal(by_number, by_name)


GOOD = {"x_train": np.zeros((3, 2)), "y_train": np.zeros(3), "x_test": np.zeros((2, 2)), "y_test": np.zeros(2)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x_train": np.zeros(3)}, "x_train must be a 2-D array"),
        ({"x_train": np.zeros((0, 2)), "y_train": np.zeros(0)}, "x_train has no rows"),
        ({"x_test": np.zeros((0, 2)), "y_test": np.zeros(0)}, "x_test has no rows"),
        ({"x_test": np.zeros((2, 3))}, "x_train has 2 features and x_test 3"),
        ({"y_train": np.zeros(4)}, "y_train has 4 labels for 3 training rows"),
        ({"y_test": np.zeros(1)}, "y_test has 1 labels for 2 test rows"),
        ({"y_test": np.zeros((2, 1))}, "y_test must be a 1-D array"),
        ({"x_test": np.array([[0.0, np.nan], [0.0, 0.0]])}, "x_test holds a NaN or infinite value"),
        ({"x_train": np.full((3, 2), np.inf)}, "x_train holds a NaN or infinite value"),
        ({"y_test": np.array(["a", "b"])}, "one comparable type"),
        ({"k": 0}, "k must be an integer ≥ 1"),
        ({"k": 2.5}, "k must be an integer ≥ 1"),
        ({"k": True}, "k must be an integer ≥ 1"),
        ({"chunk": 0}, "chunk must be an integer ≥ 1 or None"),
        ({"x_train": np.full((3, 2), 1e200)}, "squared distances overflow"),
    ],
)
def test_it_rejects_bad_input(changes: dict, message: str) -> None:
    arguments = {**GOOD, "k": 1, **changes}
    with pytest.raises(ValueError, match=message):
        knn_shapley(**arguments)


def test_it_sums_values_per_owner_in_order_of_first_appearance() -> None:
    totals = values_by_owner(np.array([0.5, 0.25, -0.125, 1.0]), ["b", "a", "b", "c"])
    assert totals == {"b": 0.375, "a": 0.25, "c": 1.0}
    assert list(totals) == ["b", "a", "c"]
    assert values_by_owner(np.array([]), []) == {}


def test_it_rejects_values_and_owners_that_do_not_line_up() -> None:
    with pytest.raises(ValueError, match="3 values for 2 owners"):
        values_by_owner(np.zeros(3), ["a", "b"])
    with pytest.raises(ValueError, match="one-dimensional"):
        values_by_owner(np.zeros((2, 1)), ["a", "b"])
