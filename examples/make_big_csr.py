"""Generates a large CSR .h5ad for the load benchmark: N_OBS x N_VARS with NNZ_PER_CELL stored
counts per cell (Poisson-like small integers as float32), written by anndata (current spec).

Usage: python3 examples/make_big_csr.py OUT.h5ad [N_OBS=200000] [N_VARS=20000] [NNZ_PER_CELL=1000]
"""
import sys

import anndata as ad
import numpy as np
import scipy.sparse as sp

out = sys.argv[1]
n_obs = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
n_vars = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
k = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
rng = np.random.default_rng(0)
indptr = np.arange(0, (n_obs + 1) * k, k, dtype=np.int64)
indices = np.empty(n_obs * k, dtype=np.int32)
chunk = 10_000
for s in range(0, n_obs, chunk):
    e = min(n_obs, s + chunk)
    block = np.sort(rng.random((e - s, n_vars)).argpartition(k, axis=1)[:, :k], axis=1)
    indices[s * k:e * k] = block.ravel()
data = (rng.geometric(0.4, size=n_obs * k)).astype(np.float32)
x = sp.csr_matrix((data, indices, indptr), shape=(n_obs, n_vars))
a = ad.AnnData(X=x)
a.obs_names = [f"c{i}" for i in range(n_obs)]
a.var_names = [f"g{j}" for j in range(n_vars)]
a.write_h5ad(out)
print("wrote", out, x.shape, x.nnz)
