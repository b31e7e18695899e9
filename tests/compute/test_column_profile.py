"""The differentially private column profile a node publishes at import (compute/profile.py): common values,
bins and months are published with their shares, a value that a few rows hold never is, the bins depend on no
data, and only imported tables are profiled."""
from __future__ import annotations

import math
import random
from collections import Counter

from compute.node.tables import table_meta
from compute.profile import (
    BANDS_PER_DOUBLING,
    PROFILE_DELTA,
    PROFILE_EPSILON,
    column_profile,
    magnitude_band,
    publish_threshold,
    stable_histogram,
    table_profile,
)
from compute.tabular import table_parse

REGIONS = ["north", "south", "east", "west"]


def test_it_publishes_common_categories_and_never_a_rare_value():
    names = [f"Person {n}" for n in range(60)]  # each held by one row: a name must never leave the node
    values = [REGIONS[n % 4] for n in range(800)] + names + ["rare"] * 5

    for attempt in range(50):
        profile = column_profile(values, kind="text")
        published = {value for value, _ in profile["categories"]}
        assert published == set(REGIONS), attempt
        assert math.isclose(sum(share for _, share in profile["categories"]), 1.0, abs_tol=1e-4)
        assert all(0.2 < share < 0.3 for _, share in profile["categories"])
    assert profile["epsilon"] == PROFILE_EPSILON and profile["delta"] == PROFILE_DELTA


def test_a_bin_below_the_threshold_passes_about_as_often_as_discrete_laplace_noise_would_lift_it():
    threshold = publish_threshold(epsilon=1.0, delta=1e-2)  # ≈ 5.3: small enough to count passes
    trials, count = 4000, 3
    passed = sum(bool(stable_histogram(Counter({"x": count}), epsilon=1.0, delta=1e-2)) for _ in range(trials))
    # Discrete Laplace noise Z of scale 1: P(Z ≥ k) = e^-k / (1 + e^-1) for k ≥ 1.
    expected = math.exp(-math.ceil(threshold - count)) / (1 + math.exp(-1))
    assert abs(passed / trials - expected) < 4 * math.sqrt(expected / trials)


def test_number_bins_are_fixed_bands_that_hold_the_values_counted_in_them():
    rng = random.Random(7)
    ages = [str(rng.randint(18, 80)) for _ in range(2000)]

    profile = column_profile(ages, kind="integer")

    bins = profile["bins"]
    assert bins and bins == sorted(bins)
    assert bins[0][0] <= 18 + 4 and bins[-1][1] >= 80 - 10  # the range is the published bands', coarsely
    assert all(low >= 16 and high <= 2 ** (7 + 1 / BANDS_PER_DOUBLING) for low, high, _ in bins)
    for low, high, _ in bins:  # each bound is 2^(k/4): no bound is taken from the data
        band = round(math.log2(low) * BANDS_PER_DOUBLING)
        assert math.isclose(low, 2 ** (band / BANDS_PER_DOUBLING), rel_tol=1e-5)
        assert math.isclose(high, 2 ** ((band + 1) / BANDS_PER_DOUBLING), rel_tol=1e-5)
        assert any(low <= int(age) < high for age in ages)
    assert magnitude_band(0.0) == (0, 0) and magnitude_band(-5.0) == (-1, 9) and magnitude_band(16.0) == (1, 16)


def test_dates_are_published_by_month_and_values_that_break_the_type_are_left_out():
    days = [f"2024-{1 + n % 3:02d}-{1 + n % 28:02d}" for n in range(600)] + ["n/a"] * 40 + ["2024-07-04"]

    profile = column_profile(days, kind="date")

    assert [month for month, _ in profile["months"]] == ["2024-01", "2024-02", "2024-03"]
    numbers = column_profile(["12", "x", "20"] * 100, kind="integer")
    assert [round(low) for low, _, _ in numbers["bins"]] == [11, 19]  # "x" is in no bin


def test_the_id_column_is_never_profiled_and_only_imported_tables_are():
    rows = "".join(f"C{n},{REGIONS[n % 4]},{n % 50}\n" for n in range(400))
    table = table_parse(("customer_id,region,score\n" + rows).encode(), id_column="customer_id")

    profiles = table_profile(table.columns, table.rows, id_index=table.id_index, kinds=["text", "text", "integer"])
    assert profiles[0] is None and profiles[1]["categories"] and profiles[2]["bins"]

    imported = table_meta(table, table_id="t1", name="customers", profiled=True)
    assert "profile" not in imported["columns"][0]
    assert {value for value, _ in imported["columns"][1]["profile"]["categories"]} == set(REGIONS)
    assert imported["columns"][2]["profile"]["type"] == "integer"
    assert all("profile" not in column for column in table_meta(table, table_id="t2", name="r")["columns"])
