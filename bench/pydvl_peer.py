"""pyDVL's exact KNN-Shapley, the peer of bench/valuation.py. Run by .venv-pydvl/bin/python (pyDVL 0.10 pins
numpy < 2, so it cannot share the project's venv); standard library, numpy, scikit-learn and pyDVL only, none
of the project's code:

    .venv-pydvl/bin/python bench/pydvl_peer.py X_TRAIN.npy Y_TRAIN.npy X_TEST.npy Y_TEST.npy K CORE OUT

It values the training rows with `pydvl.valuation.methods.knn_shapley.KNNShapleyValuation` around a
`KNeighborsClassifier(n_neighbors=K)`, pinned to CPU CORE with one thread (as ours is), and writes
OUT.npy (the values, by training row) and OUT.json (seconds of `fit`, the process's peak RSS before and after
it, the versions).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(arguments: list[str]) -> int:
    if len(arguments) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    x_train_path, y_train_path, x_test_path, y_test_path, k, core, out = arguments
    # Before numpy and scikit-learn start their thread pools: every thread they make inherits the one core.
    os.sched_setaffinity(0, {int(core)})
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"

    warnings.filterwarnings("ignore", category=FutureWarning)  # pyDVL's own deprecations, at import
    import numpy as np
    import pydvl
    import sklearn
    from pydvl.valuation.dataset import Dataset
    from pydvl.valuation.methods.knn_shapley import KNNShapleyValuation
    from sklearn.neighbors import KNeighborsClassifier

    train = Dataset(np.load(x_train_path), np.load(y_train_path))
    test = Dataset(np.load(x_test_path), np.load(y_test_path))
    valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=int(k)), test_data=test, progress=False)
    rss_before = _peak_rss_mib()
    began = time.perf_counter()
    valuation.fit(train)
    seconds = time.perf_counter() - began
    rss_after = _peak_rss_mib()

    result = valuation.result
    values = np.zeros(len(train), dtype=np.float64)
    values[result.indices] = result.values  # by training row, whatever order the result keeps
    np.save(out + ".npy", values)
    with open(out + ".json", "w") as file:
        json.dump({
            "seconds": seconds, "peak_rss_mib": rss_after, "rss_before_fit_mib": rss_before,
            "pydvl": pydvl.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__,
        }, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
