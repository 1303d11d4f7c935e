"""Reference side of the scib-metrics speed comparison (BENCHMARKS.md): times scib-metrics'
functions on obsm['X_emb'] of a file from examples/make_scib_bench.py, as its Benchmarker calls
them (90-NN graph: scikit-learn brute force here), on the CPU; prints one JSON line of seconds.

    python3 examples/scib_bench.py bench-data/scib_10k.h5ad [REP LABEL_KEY BATCH_KEY]
"""
import json
import sys
import time

import anndata as ad
import numpy as np
import scib_metrics as sm
from scib_metrics.nearest_neighbors import NeighborsResults
from sklearn.neighbors import NearestNeighbors

a = ad.read_h5ad(sys.argv[1])
rep, label_key, batch_key = (sys.argv[2:5] + ["X_emb", "label", "batch"][len(sys.argv[2:5]):])
x, pre = np.asarray(a.obsm[rep]), np.asarray(a.obsm["X_pca"])
labels, batch = a.obs[label_key].astype(str).to_numpy(), a.obs[batch_key].astype(str).to_numpy()
t = {}


def timed(name, f):
    t0 = time.perf_counter()
    v = f()
    t[name] = time.perf_counter() - t0
    return v


nn = timed("knn_90", lambda: NearestNeighbors(n_neighbors=90, algorithm="brute").fit(x).kneighbors(x))
res = NeighborsResults(indices=nn[1], distances=nn[0])
timed("silhouette_label", lambda: sm.silhouette_label(x, labels))
timed("silhouette_batch", lambda: sm.silhouette_batch(x, labels, batch))
timed("isolated_labels", lambda: sm.isolated_labels(x, labels, batch))
timed("graph_connectivity", lambda: sm.graph_connectivity(res, labels))
timed("ilisi_knn", lambda: sm.ilisi_knn(res, batch))
timed("clisi_knn", lambda: sm.clisi_knn(res, labels))
timed("pcr_comparison", lambda: sm.pcr_comparison(pre, x, batch, categorical=True))
timed("nmi_ari_kmeans", lambda: sm.nmi_ari_cluster_labels_kmeans(x, labels))
timed("kbet_per_label", lambda: sm.kbet_per_label(res, batch, labels))
t["total"] = sum(t.values())
print(json.dumps(t))
