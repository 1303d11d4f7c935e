"""Tiles a Xenium folder made by examples/make_xenium_bench.py K times (cells renamed -1..-K,
shifted 10 mm in x per copy) for the 5-million-cell read benchmark in BENCHMARKS.md.
Usage: python3 examples/tile_xenium_bench.py SRC_DIR OUT_DIR K
"""
import h5py, numpy as np, pandas as pd, os, shutil, sys
src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
with h5py.File(os.path.join(src, "cell_feature_matrix.h5")) as f:
    m = f["matrix"]
    bc = m["barcodes"][()]; data = m["data"][()]; ind = m["indices"][()]; ptr = m["indptr"][()]
    shape = m["shape"][()]
    feats = {k2: m["features"][k2][()] for k2 in m["features"]}
n = len(bc); nnz = ptr[-1]
bcs = np.concatenate([np.char.replace(bc, b"-1", f"-{i+1}".encode()) for i in range(k)])
ptrs = np.concatenate([[0]] + [ptr[1:] + i * nnz for i in range(k)])
with h5py.File(os.path.join(out, "cell_feature_matrix.h5"), "w") as f:
    m = f.create_group("matrix"); kw = dict(compression="gzip", compression_opts=4, chunks=True)
    m.create_dataset("barcodes", data=bcs, **kw)
    m.create_dataset("data", data=np.tile(data, k), **kw)
    m.create_dataset("indices", data=np.tile(ind, k), **kw)
    m.create_dataset("indptr", data=ptrs.astype(np.int64), **kw)
    m.create_dataset("shape", data=np.array([shape[0], n * k], dtype=np.int32))
    g = m.create_group("features")
    for k2, v in feats.items(): g.create_dataset(k2, data=v)
c = pd.read_parquet(os.path.join(src, "cells.parquet"))
parts = []
for i in range(k):
    d = c.copy(); d["cell_id"] = d["cell_id"].str.replace("-1", f"-{i+1}", regex=False); d["x_centroid"] += i * 10000.0; parts.append(d)
pd.concat(parts).to_parquet(os.path.join(out, "cells.parquet"), index=False)
shutil.copy(os.path.join(src, "experiment.xenium"), out)
print(n * k, nnz * k)
