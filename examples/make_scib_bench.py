"""Writes bench-data/scib_<n>k.h5ad for the scib-metrics speed comparison (BENCHMARKS.md):
n cells of 20 labelled Gaussian clusters in 32 dimensions, three batches with a batch shift in
`obsm['X_pca']` (the "unintegrated" representation) and half that shift in `obsm['X_emb']`
(the embedding to score), labels in obs['label'], batches in obs['batch']. Seeded.

    python3 examples/make_scib_bench.py [N=10000]
"""
import os
import sys

import anndata as ad
import numpy as np
import pandas as pd

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
rng = np.random.default_rng(7)
k, d = 20, 32
labels = rng.integers(0, k, n)
batch = rng.integers(0, 3, n)
centres = rng.normal(scale=4.0, size=(k, d))
shift = rng.normal(scale=2.0, size=(3, d))
base = centres[labels] + rng.normal(size=(n, d))
obs = pd.DataFrame(
    {"label": pd.Categorical([f"t{v}" for v in labels]), "batch": pd.Categorical([f"b{v}" for v in batch])},
    index=[f"cell{i}" for i in range(n)],
)
a = ad.AnnData(X=np.zeros((n, 1), dtype=np.float32), obs=obs)
a.obsm["X_pca"] = (base + shift[batch]).astype(np.float32)
a.obsm["X_emb"] = (base + 0.5 * shift[batch]).astype(np.float32)
os.makedirs("bench-data", exist_ok=True)
out = f"bench-data/scib_{n // 1000}k.h5ad"
a.write_h5ad(out)
print("wrote", out)
