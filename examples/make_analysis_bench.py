"""Writes bench-data/emb_100k.h5ad: a 100,000 x 64 embedding in obsm['X_emb'] with 40 labelled
Gaussian clusters of unequal size and spread (partly overlapping), the input of
examples/analysis_bench.rs. Seeded; about 30 MB.

    python3 examples/make_analysis_bench.py [N=100000]
"""
import sys, os
import numpy as np, anndata as ad, pandas as pd

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rng = np.random.default_rng(42)
k, d = 40, 64
sizes = rng.dirichlet(np.full(k, 2.0)) * n
sizes = np.maximum(sizes.astype(int), 50)
sizes[-1] += n - sizes.sum()
centres = rng.normal(scale=3.0, size=(k, d))
# hierarchical structure: clusters come in 8 families sharing a family centre
family = rng.normal(scale=6.0, size=(8, d))
centres += family[np.arange(k) % 8]
labels = np.repeat(np.arange(k), sizes)
spread = rng.uniform(0.6, 1.6, size=k)
X = centres[labels] + rng.normal(size=(n, d)) * spread[labels, None]
perm = rng.permutation(n)
X, labels = X[perm].astype(np.float32), labels[perm]
a = ad.AnnData(X=np.zeros((n, 1), dtype=np.float32), obs=pd.DataFrame({"label": pd.Categorical([f"c{l}" for l in labels])}, index=[f"cell{i}" for i in range(n)]))
a.obsm["X_emb"] = X
os.makedirs("bench-data", exist_ok=True)
out = f"bench-data/emb_{n // 1000}k.h5ad"
a.write_h5ad(out)
print("wrote", out)
