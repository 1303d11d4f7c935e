"""Reference side of examples/load_bench.rs: times anndata.read_h5ad on one file (or, for a
Xenium output folder, what spatialdata-io's `xenium()` does for its table: scanpy's
`read_10x_h5` with gene features only plus the pandas/pyarrow cell table joined on cell_id,
centroids into obsm['spatial']) and
reports the peak resident memory it added. Prints one JSON line:
{"secs": ..., "peak_extra_bytes": ...}.

Usage: python3 examples/load_bench.py FILE.h5ad|XENIUM_DIR [WARMUP.h5ad]
A small WARMUP file is read first so that library set-up is not counted as memory for FILE.
"""
import json
import sys
import time


def vm_hwm():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def vm_rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


import os  # noqa: E402

import anndata as ad  # noqa: E402  (imported before the baseline is taken)


def read_xenium(d):
    """What spatialdata-io's xenium() does for its table (spatialdata-io itself also needs the
    cells.zarr.zip a synthetic folder lacks): scanpy's 10x reader, gene features only, and the
    cell table with pyarrow, joined on cell_id."""
    import pandas as pd
    import scanpy as sc

    a = sc.read_10x_h5(os.path.join(d, "cell_feature_matrix.h5"), gex_only=True)
    cells = pd.read_parquet(os.path.join(d, "cells.parquet")).set_index("cell_id")
    cells.index = cells.index.astype(str)
    cells = cells.loc[a.obs_names]
    a.obsm["spatial"] = cells[["x_centroid", "y_centroid"]].to_numpy()
    a.obs = cells.drop(columns=["x_centroid", "y_centroid"])
    return a


read = read_xenium if os.path.isdir(sys.argv[1]) else ad.read_h5ad
if os.path.isdir(sys.argv[1]):
    import pandas  # noqa: F401  (library set-up before the baseline, as for anndata)
    import scanpy  # noqa: F401
if len(sys.argv) > 2:
    ad.read_h5ad(sys.argv[2])
base = max(vm_rss(), vm_hwm())
t = time.perf_counter()
a = read(sys.argv[1])
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "peak_extra_bytes": vm_hwm() - base, "shape": list(a.shape)}))
