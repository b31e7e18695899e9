"""Price policies: arbitrage-free by id sets and by noise, lines that add up, quotes that recompute (pure)."""
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.policies import (
    NoisyAnswer,
    PerMatch,
    Posted,
    PriceInputs,
    Tiered,
    UtilityBased,
    policy_from_record,
    price_recompute,
)

rates = st.decimals(min_value=0, max_value=500, places=2)
qualities = st.decimals(min_value=Decimal("0.5"), max_value=1, places=3)


@st.composite
def tiered_policies(draw):
    bands = draw(st.lists(st.integers(1, 5_000), min_size=0, max_size=4, unique=True))
    band_rates = sorted(draw(st.lists(rates, min_size=len(bands) + 1, max_size=len(bands) + 1)), reverse=True)
    return Tiered(base=draw(st.integers(0, 10_000)), tiers=tuple(zip([*sorted(bands), None], band_rates, strict=True)))


id_priced = st.one_of(
    st.builds(Posted, amount=st.integers(0, 10**6)),
    st.builds(PerMatch, base=st.integers(0, 10**5), per_id=rates),
    tiered_policies(),
)


def priced(policy, matched, quality=Decimal(1)):
    return policy.price(PriceInputs(matched=matched, query_size=10**6, quality_factor=quality)).total


@given(id_priced, st.integers(0, 50_000), st.integers(0, 50_000), st.integers(0, 50_000), qualities)
def test_splitting_a_purchase_of_ids_never_costs_less(policy, a, b, overlap, quality):
    union = a + b - min(overlap, a, b)  # the union of two id sets matches at most the sum of its parts

    assert priced(policy, union, quality) <= priced(policy, a, quality) + priced(policy, b, quality)
    assert priced(policy, max(a, b), quality) <= priced(policy, union, quality)  # and more ids never cost less


noisy = st.builds(NoisyAnswer, base=st.integers(0, 10**4), rate=rates,
                  exponent=st.decimals(min_value=Decimal("0.1"), max_value=1, places=2))
epsilons = st.decimals(min_value=Decimal("0.01"), max_value=10, places=2)


@given(noisy, epsilons, epsilons, st.integers(2, 16))
def test_several_noisier_answers_never_cost_less_than_the_one_they_imitate(policy, e1, e2, copies):
    def cost(epsilon):
        return policy.price(PriceInputs(epsilon=epsilon)).total

    assert cost(e1 + e2) <= cost(e1) + cost(e2)  # sequential composition: two answers are worth at most ε1 + ε2
    assert cost(min(e1, e2)) <= cost(max(e1, e2))
    averaged = e1 * Decimal(copies).sqrt()  # k answers at ε averaged have the variance of one at ε·√k
    assert cost(averaged) <= copies * cost(e1)


@given(st.one_of(id_priced, noisy), st.integers(0, 50_000), qualities, epsilons)
def test_a_quotes_lines_add_up_to_its_total_and_it_recomputes_from_its_records_to_the_cent(
        policy, matched, quality, epsilon):
    inputs = PriceInputs(matched=matched, query_size=10**6, quality_factor=quality, epsilon=epsilon)
    quote = policy.price(inputs)

    stored_policy = json.loads(json.dumps(policy.as_record()))
    stored_inputs = json.loads(json.dumps(inputs.as_record()))
    assert sum(line.amount for line in quote.lines) == quote.total
    assert price_recompute(stored_policy, stored_inputs) == quote


def test_a_utility_price_follows_the_uplift_between_its_floor_and_ceiling():
    policy = UtilityBased(floor=1_000, ceiling=50_000)

    def cost(uplift):
        return policy.price(PriceInputs(auc_uplift=Decimal(uplift), provider_share=Decimal("0.6"),
                                        value_per_auc_point=2_000)).total

    assert cost("0.02") == 2_400  # 2 points × 0.6 × 20.00
    assert cost("0") == cost("-0.01") == 1_000 and cost("0.9") == 50_000
    with pytest.raises(ValueError, match="trial"):
        policy.price(PriceInputs())


utility = st.builds(lambda floor, extra: UtilityBased(floor=floor, ceiling=floor + extra),
                    st.integers(0, 10**5), st.integers(0, 10**6))
uplifts = st.decimals(min_value=Decimal("-0.2"), max_value=Decimal("0.5"), places=4)
shares = st.decimals(min_value=0, max_value=1, places=3)


@given(utility, uplifts, uplifts, shares, st.integers(0, 10**4), st.integers(0, 50_000), st.integers(0, 50_000))
def test_a_utility_price_grows_with_the_uplift_stays_in_its_bounds_and_ignores_how_ids_are_split(
        policy, u1, u2, share, value, a, b):
    def cost(uplift, matched=0):
        return policy.price(PriceInputs(matched=matched, query_size=10**6, auc_uplift=uplift, provider_share=share,
                                        value_per_auc_point=value))

    low, high = cost(min(u1, u2)), cost(max(u1, u2))
    assert policy.floor <= low.total <= high.total <= policy.ceiling
    assert cost(u1, a + b).total == cost(u1, a).total == cost(u1, b).total  # one model: ids split buy nothing
    assert sum(line.amount for line in high.lines) == high.total
    assert price_recompute(json.loads(json.dumps(policy.as_record())), json.loads(json.dumps(PriceInputs(
        auc_uplift=max(u1, u2), provider_share=share, value_per_auc_point=value).as_record()))) == high


@pytest.mark.parametrize(("record", "message"), [
    ({"kind": "auction"}, "unknown price policy"),
    ({"kind": "posted", "amount": -1}, "whole number of cents"),
    ({"kind": "posted", "price": 3}, "bad fields"),
    ({"kind": "tiered", "base": 0, "tiers": [[100, "1"], [None, "2"]]}, "cannot exceed"),
    ({"kind": "tiered", "base": 0, "tiers": [[100, "1"]]}, "open band"),
    ({"kind": "noisy", "base": 0, "rate": "1", "exponent": "2"}, "convex"),
    ({"kind": "utility", "floor": 10, "ceiling": 5}, "floor"),
    ({"kind": "posted", "amount": 5.5}, "whole number of cents"),
    ({"kind": "posted", "amount": True}, "whole number of cents"),
    ({"kind": "posted", "amount": 10**12}, "whole number of cents"),
    ({"kind": "per_match", "base": 0, "per_id": "abc"}, "bad fields"),
    ({"kind": "per_match", "base": 0, "per_id": "Infinity"}, "finite"),
    ({"kind": "tiered", "base": 0, "tiers": [["x", "1"], [None, "1"]]}, "whole number of ids"),
    ({"kind": "tiered", "base": 0, "tiers": 7}, "bad fields"),
    ({"kind": "noisy", "base": 0, "rate": {"a": 1}}, "bad fields"),
])
def test_a_policy_that_could_be_gamed_or_cannot_be_read_is_refused_with_a_reason(record, message):
    with pytest.raises(ValueError, match=message):
        policy_from_record(record)


def test_inputs_that_cannot_be_true_are_refused():
    with pytest.raises(ValueError, match="more ids matched"):
        PriceInputs(matched=11, query_size=10)
    with pytest.raises(ValueError, match="quality factor"):
        PriceInputs(quality_factor=Decimal("0.2"))
    with pytest.raises(ValueError, match="ε must be positive"):
        PriceInputs(epsilon=Decimal(0))
