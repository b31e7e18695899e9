"""The fees of a replacement transaction (pure: no chain)."""
from audit.chain.transactions import fees_bumped

GWEI = 10**9
NOW = {"maxFeePerGas": 3 * GWEI, "maxPriorityFeePerGas": GWEI}


def test_each_fee_rises_by_at_least_the_ten_percent_a_node_asks_for_a_replacement():
    old = {"maxFeePerGas": 10 * GWEI + 1, "maxPriorityFeePerGas": 2 * GWEI + 1}

    new = fees_bumped(old, current=NOW, cap=100 * GWEI)

    assert new is not None
    assert new["maxFeePerGas"] * 10 >= old["maxFeePerGas"] * 11
    assert new["maxPriorityFeePerGas"] * 10 >= old["maxPriorityFeePerGas"] * 11


def test_a_bump_never_pays_less_than_the_chain_asks_now():
    new = fees_bumped({"maxFeePerGas": GWEI, "maxPriorityFeePerGas": 1}, current=NOW, cap=100 * GWEI)

    assert new == NOW


def test_a_fee_cap_never_falls_below_its_tip():
    new = fees_bumped({"maxFeePerGas": GWEI, "maxPriorityFeePerGas": 5 * GWEI}, current=NOW, cap=100 * GWEI)

    assert new is not None and new["maxFeePerGas"] >= new["maxPriorityFeePerGas"]


def test_there_is_no_bump_past_the_cap():
    assert fees_bumped({"maxFeePerGas": 90 * GWEI, "maxPriorityFeePerGas": GWEI}, current=NOW, cap=100 * GWEI) is None
    assert fees_bumped({"maxFeePerGas": 80 * GWEI, "maxPriorityFeePerGas": GWEI}, current=NOW, cap=100 * GWEI) == {
        "maxFeePerGas": 90 * GWEI, "maxPriorityFeePerGas": GWEI * 9 // 8}
