"""Overlap and co-provider valuation benchmark (the pricing issue's measurements), BENCH_QUICK=1: 10,000 ids.

1. Shapley of 10 providers in the union-coverage game of 100,000 buyer ids: the closed form from the overlap
   histogram (`pricing.valuation.coverage.coverage_shapley`) against `shapley.shapley_exact` enumerating all
   2^10 coalitions of the same game (`coverage_game`); they must agree to 1e-9 relative.
2. 20 providers: exact Shapley over all 2^20 coalitions (`shapley_exact` stops at 16 players, so the bench
   enumerates them with numpy, the same formula; checked against the closed form) against
   `shapley_sampled` with its Hoeffding bound at ε = 0.01, δ = 0.05; the error observed against exact.
3. `coverage_overlap` of a buyer's 100,000 ids and 3 providers × 100,000 ids, every step in one process pinned
   to one core, against one `coverage_dp` (plain PSI cardinality, buyer × one provider) in the same run, each
   in a fresh process for its own peak RSS. The exact histogram the last provider counted must equal the
   plaintext one; the released (noised) one is compared with it cell by cell.

Coverage is synthetic and correlated: each id has two latent factors, and provider i covers the ids whose
score (its loading on the factors plus its own noise) is among its lowest p_i, p_i in [0.3, 0.6].
"""
from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from bench.psi import _in_fresh_process

COMMAND = "BENCH_ONLY=overlap make bench   # or: .venv/bin/python -m bench.overlap   (BENCH_QUICK=1: 10k ids)"
SMALL_PROVIDERS, LARGE_PROVIDERS, PROTOCOL_PROVIDERS = 10, 20, 3
TOLERANCE, CONFIDENCE = 0.01, 0.95
EPSILON = 1.0  # the quotes' ε: discrete Laplace of scale 2/ε per overlap cell, 1/ε for coverage_dp
NOISE_SLACK = 60  # a cell further than this from the plaintext one: P < 1e-12 at scale 2


def _log(message: str) -> None:
    print(f"[overlap] {message}", flush=True)


def _pin() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _coverage(ids: int, providers: int, seed: int) -> np.ndarray:
    """ids × providers booleans: who covers which of the buyer's ids (correlated, see the module docstring)."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(ids, 2))
    loadings = rng.uniform(0.3, 0.8, size=(providers, 2)) * rng.choice([-1.0, 1.0], size=(providers, 2))
    scores = factors @ loadings.T + rng.normal(size=(ids, providers))
    shares = rng.uniform(0.3, 0.6, size=providers)
    thresholds = np.array([np.quantile(scores[:, i], shares[i]) for i in range(providers)])
    return scores < thresholds


def _cells(covered: np.ndarray) -> np.ndarray:
    """The overlap histogram as an array: entry T = how many ids exactly the providers of mask T cover
    (entry 0: the ids no provider covers)."""
    weights = np.left_shift(np.int64(1), np.arange(covered.shape[1], dtype=np.int64))
    return np.bincount(covered.astype(np.int64) @ weights, minlength=1 << covered.shape[1])


def _named(cells: np.ndarray, players: list[str]) -> dict[frozenset[str], int]:
    """The same histogram as pricing.valuation.coverage takes it: {providers: count}, non-empty cells only."""
    return {frozenset(p for bit, p in enumerate(players) if mask >> bit & 1): int(count)
            for mask, count in enumerate(cells.tolist()) if mask and count}


def _closed_form_floats(cells: np.ndarray, n: int) -> np.ndarray:
    """φ_i = Σ_(T∋i) h(T)/|T| in floats over the histogram array (numpy): the closed form without fractions."""
    masks = np.arange(1, len(cells))
    members = (masks[:, None] >> np.arange(n)) & 1
    return (cells[1:] / members.sum(axis=1)) @ members


def _best_of(repeats: int, function: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - began)
    return best, result


def _relative_gap(values: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(values - expected) / np.maximum(np.abs(expected), 1e-300)))


def _ten(ids: int) -> dict[str, Any]:
    from pricing.valuation.coverage import coverage_game, coverage_shapley
    from pricing.valuation.shapley import shapley_exact

    _pin()
    players = [f"p{i}" for i in range(SMALL_PROVIDERS)]
    histogram = _named(_cells(_coverage(ids, SMALL_PROVIDERS, seed=10)), players)
    closed_seconds, closed = _best_of(5, lambda: coverage_shapley(histogram))

    def exact_run() -> np.ndarray:
        n, value = coverage_game(histogram, players)
        return shapley_exact(n, value)

    exact_seconds, exact = _best_of(3, exact_run)
    cells = _cells(_coverage(ids, SMALL_PROVIDERS, seed=10))
    floats_seconds, floats = _best_of(5, lambda: _closed_form_floats(cells, SMALL_PROVIDERS))
    closed_values = np.array([float(closed.get(p, Fraction(0))) for p in players])
    gap = _relative_gap(exact, closed_values)
    assert gap <= 1e-9, f"exact enumeration and closed form differ by {gap:.2e} (relative)"
    assert _relative_gap(floats, closed_values) <= 1e-9, "the float closed form differs"
    union = sum(histogram.values())
    assert abs(closed_values.sum() - union) < 1e-6, "the closed form does not add up to the union"
    return {"closed": closed_seconds, "exact": exact_seconds, "floats": floats_seconds, "cells": len(histogram),
            "gap": gap, "union": union, "values": closed_values.tolist()}


def _game_table(cells: np.ndarray, n: int) -> np.ndarray:
    """v(S) for every mask S (counts of ids): the covered total minus the ids covered only by providers outside
    S, from a subset-sum (zeta) transform of the histogram over all 2^n masks."""
    below = cells.astype(np.float64)
    below[0] = 0.0
    for bit in range(n):
        view = below.reshape(-1, 2, 1 << bit)
        view[:, 1, :] += view[:, 0, :]
    full = (1 << n) - 1
    return below[full] - below[full ^ np.arange(1 << n)]


def _enumerated_shapley(values: np.ndarray, n: int) -> np.ndarray:
    """shapley_exact's formula over all 2^n coalitions, vectorised: per player, every coalition without it,
    weighted |S|!(n−|S|−1)!/n! times its marginal contribution."""
    sizes = np.zeros(1 << n, dtype=np.int8)
    for bit in range(n):
        view = sizes.reshape(-1, 2, 1 << bit)
        view[:, 1, :] += 1
    weights = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    result = np.empty(n)
    for player in range(n):
        value_view = values.reshape(-1, 2, 1 << player)
        size_view = sizes.reshape(-1, 2, 1 << player)
        result[player] = float(np.sum(weights[size_view[:, 0, :]] * (value_view[:, 1, :] - value_view[:, 0, :])))
    return result


def _twenty(ids: int) -> dict[str, Any]:
    from pricing.valuation.coverage import coverage_shapley
    from pricing.valuation.shapley import EXACT_MAX_PLAYERS, permutations_needed, shapley_exact, shapley_sampled

    _pin()
    n = LARGE_PROVIDERS
    players = [f"p{i}" for i in range(n)]
    covered = _coverage(ids, n, seed=20)
    cells = _cells(covered)
    try:
        shapley_exact(n, lambda mask: 0.0)
        capped = False
    except ValueError:
        capped = True
    began = time.perf_counter()
    table = _game_table(cells, n) / ids  # v(S) as a share of the buyer's ids: marginals in [0, |C_i| / ids]
    table_seconds = time.perf_counter() - began
    began = time.perf_counter()
    exact = _enumerated_shapley(table, n)
    exact_seconds = time.perf_counter() - began
    closed = coverage_shapley(_named(cells, players))
    closed_values = np.array([float(closed.get(p, Fraction(0))) / ids for p in players])
    gap = _relative_gap(exact, closed_values)
    assert gap <= 1e-9, f"the 2^{n} enumeration and the closed form differ by {gap:.2e} (relative)"

    lookup = table.tolist()  # the coalition value is a list lookup: the sampler's own cost is what is timed
    bound = float(covered.sum(axis=0).max()) / ids
    needed = permutations_needed(players=n, marginal_bound=bound, tolerance=TOLERANCE, confidence=CONFIDENCE)
    generic = permutations_needed(players=n, marginal_bound=1.0, tolerance=TOLERANCE, confidence=CONFIDENCE)
    began = time.perf_counter()
    sampled = shapley_sampled(n, lookup.__getitem__, marginal_bound=bound, tolerance=TOLERANCE,
                              confidence=CONFIDENCE, rng=np.random.default_rng(2020))
    sampled_seconds = time.perf_counter() - began
    assert sampled.permutations == needed
    error = float(np.max(np.abs(sampled.values - exact)))
    return {"capped": capped, "exact_max": EXACT_MAX_PLAYERS, "table": table_seconds, "exact": exact_seconds,
            "sampled": sampled_seconds, "permutations": sampled.permutations, "generic": generic,
            "evaluations": sampled.evaluations, "bound": bound, "error": error, "gap": gap,
            "cells": int(np.count_nonzero(cells[1:])), "union": float(table[-1])}


def _protocol_data(ids: int) -> tuple[list[str], list[list[str]], list[set[str]]]:
    """The buyer's ids and each provider's: the buyer ids it covers (correlated) plus ids of its own, ``ids``
    in all; shuffled. Deterministic, so that both protocols' processes get the same sets."""
    rng = np.random.default_rng(3)
    tokens = [f"{value:016x}" for value in rng.integers(0, 2**63, size=ids * (1 + PROTOCOL_PROVIDERS))]
    buyer = tokens[:ids]
    covered = _coverage(ids, PROTOCOL_PROVIDERS, seed=30)
    providers, matched = [], []
    for rank in range(PROTOCOL_PROVIDERS):
        mine = [buyer[j] for j in np.flatnonzero(covered[:, rank])]
        own = tokens[ids * (1 + rank) : ids * (1 + rank) + ids - len(mine)]
        table = mine + own
        rng.shuffle(table)  # type: ignore[arg-type]
        providers.append(table)
        matched.append(set(mine))
    return buyer, providers, matched


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _protocol(ids: int, which: str) -> dict[str, Any]:
    """All steps of one protocol in this process: the providers' H(y) first (their nodes keep them per table
    version; timed apart), then every step of the plan, each timed."""
    from compute.crypto.sealing import pair_secret, sealing_keypair
    from compute.protocols import coverage, overlap
    from compute.protocols.local import MemoryData
    from compute.protocols.psi import psi_points
    from compute.protocols.spec import StepInput, protocol_plan
    from compute.tabular import Table

    _pin()
    buyer, providers, matched = _protocol_data(ids)
    if which == "coverage_dp":
        providers, matched = providers[:1], matched[:1]
    spec = overlap.SPEC if which == "coverage_overlap" else coverage.SPEC
    roles = ("consumer",) + ("provider",) * len(providers)
    data = [MemoryData(Table(columns=["customer_id", "x"], rows=[[i, "1"] for i in ids_], id_column="customer_id"))
            for ids_ in [buyer, *providers]]
    keys = [sealing_keypair() for _ in roles]
    job = secrets.token_bytes(16)

    def secret_for(own: int) -> Callable[[int], bytes]:
        return lambda other: pair_secret(private=keys[own][0], peer_public=keys[other][1],
                                         context=job + bytes([min(own, other), max(own, other)]))

    exact: list[int] = []  # what the releasing node counted, before its noise (a spy on the noise call)
    real_integer, real_count = overlap.noisy_integer, coverage.noisy_count

    def spied_integer(value: int, *, scale: float) -> int:
        exact.append(value)
        return real_integer(value, scale=scale)

    def spied_count(count: int, *, epsilon: float) -> int:
        exact.append(count)
        return real_count(count, epsilon=epsilon)

    overlap.noisy_integer, coverage.noisy_count = spied_integer, spied_count  # this forked process only
    rss_before = _rss_mib()
    began = time.perf_counter()
    for party in data[1:]:
        psi_points(party)
    hashing = time.perf_counter() - began
    steps: list[tuple[str, float]] = []
    states: dict[int, bytes | None] = {}
    payload, release, sent = b"", None, 0
    for planned in protocol_plan(spec, list(roles)):
        began = time.perf_counter()
        output = planned.step.run(StepInput(payload=payload, state=states.get(planned.party),
                                            params={"epsilon": EPSILON}, data=data[planned.party],
                                            party=planned.party, party_roles=roles,
                                            pair_secret=secret_for(planned.party)))
        label = "consumer" if planned.party == 0 else f"provider {planned.party}"
        steps.append((f"{planned.step.name} ({label})", time.perf_counter() - began))
        if output.release is not None:
            release = output.release
            break
        states[planned.party] = output.state
        assert output.message is not None
        payload = output.message
        sent += len(payload)
    assert release is not None, "the protocol released nothing"
    plain_union = set().union(*matched)
    if which == "coverage_overlap":
        plain_cells: dict[int, int] = {}
        for item in plain_union:
            cell = sum(1 << r for r in range(len(matched)) if item in matched[r])
            plain_cells[cell] = plain_cells.get(cell, 0) + 1
        counted = dict(zip(range(1, 1 << len(matched)), exact, strict=True))
        assert counted == {cell: plain_cells.get(cell, 0) for cell in counted}, "the counted histogram is wrong"
        released = {int(cell): count for cell, count in release.public["histogram"].items()}
        deviation = max(abs(released.get(cell, 0) - plain_cells.get(cell, 0)) for cell in counted)
        cells = {cell: (plain_cells.get(cell, 0), released.get(cell, 0)) for cell in counted}
    else:
        assert exact == [len(plain_union)], f"coverage_dp counted {exact}, not {len(plain_union)}"
        deviation = abs(release.public["cardinality"] - len(plain_union))
        cells = {1: (len(plain_union), release.public["cardinality"])}
    assert deviation <= NOISE_SLACK, f"a released cell is {deviation} from the plaintext one"
    return {"hashing": hashing, "steps": steps, "seconds": sum(seconds for _, seconds in steps),
            "deviation": deviation, "cells": cells, "bytes": sent, "rss_before": rss_before,
            "union": len(plain_union), "provider_sizes": [len(p) for p in providers]}


def run() -> str:
    quick = os.environ.get("BENCH_QUICK") == "1"
    ids = 10_000 if quick else 100_000
    load = os.getloadavg()  # the machine is shared: say how busy it was
    _log(f"{ids:,} ids; load average {load[0]:.2f}")
    ten = _in_fresh_process(_ten, ids)
    _log(f"10 providers: closed form {ten['closed'] * 1e3:.2f} ms, exact {ten['exact']:.3f} s")
    twenty = _in_fresh_process(_twenty, ids)
    _log(f"20 providers: exact {twenty['exact']:.2f} s, sampled {twenty['sampled']:.2f} s "
         f"({twenty['permutations']:,} permutations), error {twenty['error']:.4f}")
    parent_rss = _rss_mib()  # what every forked process starts with (Django and numpy imported)
    single = _in_fresh_process(_protocol, ids, "coverage_dp")
    _log(f"coverage_dp: {single['hashing']:.1f} s hashing + {single['seconds']:.1f} s steps")
    multi = _in_fresh_process(_protocol, ids, "coverage_overlap")
    _log(f"coverage_overlap: {multi['hashing']:.1f} s hashing + {multi['seconds']:.1f} s steps")
    load_after = os.getloadavg()[0]
    return _section(quick, ids, load[0], load_after, parent_rss, ten, twenty, single, multi)


def _section(quick: bool, ids: int, load: float, load_after: float, parent_rss: float, ten: dict[str, Any],
             twenty: dict[str, Any], single: dict[str, Any], multi: dict[str, Any]) -> str:
    cold_multi, cold_single = multi["hashing"] + multi["seconds"], single["hashing"] + single["seconds"]
    within = twenty["error"] <= TOLERANCE
    cell_rows = [f"| {{{', '.join(str(r + 1) for r in range(PROTOCOL_PROVIDERS) if cell >> r & 1)}}} | "
                 f"{plain:,} | {noisy:,} | {noisy - plain:+d} |"
                 for cell, (plain, noisy) in sorted(multi["cells"].items())]
    return "\n".join([
        "## Co-provider overlap and Shapley splits",
        "",
        f"`{COMMAND}`",
        "",
        f"{'Quick run (BENCH_QUICK=1): ' if quick else ''}{ids:,} buyer ids. Coverage is synthetic and correlated "
        "(two latent factors per id; provider i covers the ids whose score is among its lowest p_i, p_i drawn in "
        "[0.3, 0.6]). Each part ran in a fresh process pinned to one core. Load average of the machine (shared, "
        f"{os.cpu_count()} cores): {load:.2f} when the run began, {load_after:.2f} when it ended.",
        "",
        f"### Shapley of {SMALL_PROVIDERS} providers from the overlap histogram",
        "",
        f"The union-coverage game of {SMALL_PROVIDERS} providers over the buyer's ids ({ten['cells']} non-empty "
        f"cells of the 2^{SMALL_PROVIDERS} − 1, union {ten['union']:,} ids). Both give the same values (largest "
        f"relative difference {ten['gap']:.1e}, checked ≤ 1e-9), adding up to the union.",
        "",
        "| method | time (best of 5 / 3) | ÷ closed form |",
        "|---|---:|---:|",
        f"| **closed form** `coverage_shapley` (φ_i = Σ_(T∋i) h(T)/\\|T\\|, exact fractions) | "
        f"**{ten['closed'] * 1e3:.2f} ms** | 1× |",
        f"| `shapley_exact` over all {1 << SMALL_PROVIDERS:,} coalitions, values from `coverage_game` | "
        f"{ten['exact'] * 1e3:.0f} ms | {ten['exact'] / ten['closed']:,.1f}× |",
        f"| the closed form in floats (numpy over the histogram array, written in the bench) | "
        f"{ten['floats'] * 1e3:.2f} ms | {ten['floats'] / ten['closed']:.3f}× |",
        "",
        f"### Exact against sampled Shapley, {LARGE_PROVIDERS} players",
        "",
        f"The union-coverage game of {LARGE_PROVIDERS} providers ({twenty['cells']:,} non-empty cells), v(S) as a "
        "share of the buyer's ids. "
        + (f"`shapley_exact` refuses more than {twenty['exact_max']} players, so " if twenty["capped"] else "")
        + f"the exact values come from an enumeration written in the bench (numpy, the same formula over all "
        f"2^{LARGE_PROVIDERS} = {1 << LARGE_PROVIDERS:,} coalitions, their values from a subset-sum transform of "
        f"the histogram in {twenty['table']:.2f} s, not counted below); they equal the closed form (largest "
        f"relative difference {twenty['gap']:.1e}). `shapley_sampled` got the coalition value as a list lookup "
        "from that table, so its time is the sampler's own (permutations, cache, sums).",
        "",
        "| method | time | coalition values used | permutations |",
        "|---|---:|---:|---:|",
        f"| exact, all coalitions (vectorised) | {twenty['exact']:.2f} s | {1 << LARGE_PROVIDERS:,} | |",
        f"| `shapley_sampled`, ε = {TOLERANCE}, δ = {1 - CONFIDENCE:.2f} | {twenty['sampled']:.2f} s | "
        f"{twenty['evaluations']:,} | {twenty['permutations']:,} |",
        "",
        f"Bound: every marginal of provider i lies in [0, \\|C_i\\| / ids], so b = max_i \\|C_i\\| / ids = "
        f"{twenty['bound']:.3f} and m = ⌈2b²·ln(2n/δ)/ε²⌉ = {twenty['permutations']:,} "
        f"({twenty['generic']:,} with the generic b = 1). Largest error observed against exact: "
        f"**{twenty['error']:.4f}** ({twenty['error'] * ids:,.0f} ids), "
        f"{'within' if within else 'NOT within'} ε = {TOLERANCE} ({twenty['error'] / TOLERANCE:.0%} of it). "
        f"Sampled ÷ exact time: {twenty['sampled'] / twenty['exact']:.1f}×. With a costly value function the "
        f"count of values decides: sampling needed {twenty['evaluations'] / (1 << LARGE_PROVIDERS):.0%} of the "
        "coalitions the exact sum needs.",
        "",
        f"### Overlap protocol: {PROTOCOL_PROVIDERS} providers × {ids:,} ids against one PSI cardinality",
        "",
        f"`coverage_overlap` of the buyer's {ids:,} ids and {PROTOCOL_PROVIDERS} providers of {ids:,} ids each "
        f"(union of coverage {multi['union']:,}), against `coverage_dp` (the one-provider PSI cardinality) of the "
        f"same buyer and the first provider ({ids:,} × {ids:,}), in the same run: every step in one process pinned "
        "to one core, with the pairwise secrets as the nodes derive them (X25519 + HKDF); the broker, sealing and "
        f"the nodes' hops are not included (see the latency section). ε = {EPSILON:g}.",
        "",
        "| run | providers' H(y) (kept per table version) | steps | whole run | ÷ coverage_dp (whole / steps) "
        "| bytes sent | peak RSS (data loaded) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| **coverage_overlap**, {PROTOCOL_PROVIDERS} providers | {multi['hashing']:.1f} s | "
        f"{multi['seconds']:.1f} s | **{cold_multi:.1f} s** | **{cold_multi / cold_single:.2f}×** / "
        f"{multi['seconds'] / single['seconds']:.2f}× | {multi['bytes'] / 1e6:.1f} MB | "
        f"{multi['peak_rss_mib']:.0f} MiB ({multi['rss_before']:.0f}) |",
        f"| baseline: `coverage_dp`, 1 provider | {single['hashing']:.1f} s | {single['seconds']:.1f} s | "
        f"{cold_single:.1f} s | 1× | {single['bytes'] / 1e6:.1f} MB | {single['peak_rss_mib']:.0f} MiB "
        f"({single['rss_before']:.0f}) |",
        "",
        "Steps of the overlap run: " + "; ".join(f"{name} {seconds:.2f} s" for name, seconds in multi["steps"])
        + ". Peak RSS is the fresh (forked) process's high-water mark; in brackets its RSS once the tables were "
        f"in memory, before the first step; both include the {parent_rss:.0f} MiB it inherited from the bench's "
        "process at the fork.",
        "",
        f"Where the time goes: with k providers the overlap hashes (1 + k)·{ids:,} ids to the curve and does "
        f"(1 + 3k)·{ids:,} scalar multiplications (the buyer's list blinded by it and by every provider, each "
        f"provider's ids blinded by it and by the buyer), against 2·{ids:,} and 4·{ids:,} for coverage_dp; a hash "
        "costs about one multiplication (PSI section), so about (2 + 4k)/6 = "
        f"{(2 + 4 * PROTOCOL_PROVIDERS) / 6:.2f}× is expected for k = {PROTOCOL_PROVIDERS}. Matching and counting "
        "(set lookups, the bit columns, the noise) take well under a second.",
        "",
        f"{PROTOCOL_PROVIDERS} separate `coverage_dp` runs would cost about {3 * cold_single:.1f} s (3 × the "
        "baseline, not measured apart) and give per-provider counts only, which count shared ids twice. The "
        "histogram the last provider counted equals the plaintext one exactly; the released one (discrete "
        f"Laplace of scale {2 / EPSILON:g} per cell) is at most **{multi['deviation']}** ids from it in any cell "
        f"(checked ≤ {NOISE_SLACK}); coverage_dp released {single['cells'][1][1]:,} for an exact "
        f"{single['cells'][1][0]:,}.",
        "",
        "| cell (providers covering exactly) | plaintext | released | noise |",
        "|---|---:|---:|---:|",
        *cell_rows,
    ]) + "\n"


if __name__ == "__main__":
    print(run())
