"""Generates the streaming benchmark input: an .h5ad (current AnnData spec) with N_OBS cells x the
genes of GENES_CSV, NNZ_PER_CELL stored counts per cell (an imaging panel after alignment),
written block by block with h5py so generation itself never holds the matrix.

Usage: python3 examples/make_stream_h5ad.py OUT.h5ad GENES_CSV [N_OBS=1000000] [NNZ_PER_CELL=300]
"""
import sys

import h5py
import numpy as np

out, genes_csv = sys.argv[1], sys.argv[2]
n_obs = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
k = int(sys.argv[4]) if len(sys.argv) > 4 else 300
genes = [l.strip().split(",")[-1] for l in open(genes_csv)][1:]
n_vars = len(genes)
rng = np.random.default_rng(0)
str_dt = h5py.string_dtype()


def enc(obj, kind, version):
    obj.attrs["encoding-type"] = kind
    obj.attrs["encoding-version"] = version


with h5py.File(out, "w") as f:
    enc(f, "anndata", "0.1.0")
    x = f.create_group("X")
    enc(x, "csr_matrix", "0.1.0")
    x.attrs["shape"] = np.array([n_obs, n_vars], dtype=np.int64)
    data = x.create_dataset("data", shape=(n_obs * k,), dtype=np.float32, chunks=(1 << 20,))
    idx = x.create_dataset("indices", shape=(n_obs * k,), dtype=np.int32, chunks=(1 << 20,))
    x.create_dataset("indptr", data=np.arange(0, (n_obs + 1) * k, k, dtype=np.int64))
    block = 20_000
    for s in range(0, n_obs, block):
        e = min(n_obs, s + block)
        cols = np.sort(rng.random((e - s, n_vars)).argpartition(k, axis=1)[:, :k], axis=1)
        idx[s * k:e * k] = cols.ravel().astype(np.int32)
        data[s * k:e * k] = rng.integers(1, 6, size=(e - s) * k).astype(np.float32)
    for name, index in [("obs", [f"cell{i}" for i in range(n_obs)]), ("var", genes)]:
        g = f.create_group(name)
        enc(g, "dataframe", "0.2.0")
        g.attrs["_index"] = "_index"
        g.attrs["column-order"] = np.array([], dtype=np.float64)
        d = g.create_dataset("_index", data=np.array(index, dtype=object), dtype=str_dt)
        enc(d, "string-array", "0.2.0")
    for name in ["obsm", "layers", "obsp", "varm", "varp", "uns"]:
        enc(f.create_group(name), "dict", "0.1.0")
print("wrote", out, n_obs, "x", n_vars, "with", k, "counts per cell")
