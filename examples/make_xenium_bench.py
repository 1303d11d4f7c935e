"""A synthetic Xenium Onboard Analysis folder of N cells for examples/load_bench (read time and
memory of a Xenium folder against Python readers): `cell_feature_matrix.h5` in 10x's v3 layout
(CSC genes x cells, int32 counts, gzip-compressed chunks as Xenium writes them; 480 genes and
20 negative-control features), `cells.parquet` (cell_id as Xenium names them, x/y_centroid in
um, counts and areas) and the real run's `experiment.xenium` copied from ../shared.

Counts are Poisson draws (about 120 non-zero genes per cell); nothing is derived from real
data. Usage: python3 examples/make_xenium_bench.py OUT_DIR [N_CELLS]   (default 500,000)
"""

import os
import shutil
import sys

import h5py
import numpy as np
import pandas as pd

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500_000
n_genes, n_controls = 480, 20
rng = np.random.default_rng(0)
os.makedirs(out, exist_ok=True)

# Cell ids as Xenium writes them: 8 letters a-p, "-1".
letters = np.array(list("abcdefghijklmnop"))
codes = rng.integers(0, 16, size=(n, 8))
ids = np.array(["".join(letters[c]) + "-1" for c in codes])
ids = pd.unique(ids)
n = len(ids)

nnz_per = rng.poisson(120, n).clip(1, n_genes + n_controls)
indptr = np.zeros(n + 1, dtype=np.int64)
indptr[1:] = np.cumsum(nnz_per)
indices = np.concatenate([np.sort(rng.choice(n_genes + n_controls, k, replace=False)) for k in nnz_per])
data = rng.poisson(2.0, indptr[-1]).astype(np.int32) + 1

with h5py.File(os.path.join(out, "cell_feature_matrix.h5"), "w") as f:
    m = f.create_group("matrix")
    kw = dict(compression="gzip", compression_opts=4, chunks=True)
    m.create_dataset("barcodes", data=ids.astype("S"), **kw)
    m.create_dataset("data", data=data, **kw)
    m.create_dataset("indices", data=indices.astype(np.int64), **kw)
    m.create_dataset("indptr", data=indptr, **kw)
    m.create_dataset("shape", data=np.array([n_genes + n_controls, n], dtype=np.int32))
    ft = m.create_group("features")
    names = [f"Gene{i:04d}" for i in range(n_genes)] + [f"NegControlProbe_{i:02d}" for i in range(n_controls)]
    types = ["Gene Expression"] * n_genes + ["Negative Control Probe"] * n_controls
    ft.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
    ft.create_dataset("feature_type", data=np.array(types, dtype="S"))
    ft.create_dataset("genome", data=np.array(["Unknown"] * len(names), dtype="S"))
    ft.create_dataset("id", data=np.array([f"ENSG{i:011d}" for i in range(len(names))], dtype="S"))
    ft.create_dataset("name", data=np.array(names, dtype="S"))

side = np.sqrt(n) * 12.0
cells = pd.DataFrame(
    {
        "cell_id": ids,
        "x_centroid": rng.uniform(0, side, n),
        "y_centroid": rng.uniform(0, side, n),
        "transcript_counts": np.diff(indptr).astype(np.int64),
        "control_probe_counts": rng.poisson(0.2, n),
        "control_codeword_counts": rng.poisson(0.1, n),
        "total_counts": np.diff(indptr).astype(np.int64),
        "cell_area": rng.gamma(9.0, 10.0, n),
        "nucleus_area": rng.gamma(9.0, 4.0, n),
    }
)
cells.to_parquet(os.path.join(out, "cells.parquet"), index=False)
here = os.path.dirname(os.path.abspath(__file__))
shutil.copy(os.path.join(here, "../../shared/data/vendor/xenium_experiment_file/experiment.xenium"), out)
print(f"{out}: {n} cells, {indptr[-1]} non-zeros")
