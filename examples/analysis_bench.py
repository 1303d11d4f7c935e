"""scanpy side of examples/analysis_bench.rs: kNN (15) + UMAP + Leiden with scanpy 1.11
(pynndescent, umap-learn, leidenalg), timed per step, with the quality numbers.

    python3 examples/analysis_bench.py DATA.h5ad REP|counts LABEL_KEY|-

REP is an obsm key; `counts` runs normalize_total, log1p, 2,000 HVGs, scale(max_value=10) and
PCA (64) first (timed as `pca`). Prints one JSON line.
"""
import sys, time, json, warnings
warnings.filterwarnings("ignore")
import numpy as np, anndata as ad, scanpy as sc
from sklearn.neighbors import NearestNeighbors

path, rep, label_key = sys.argv[1], sys.argv[2], sys.argv[3]
a = ad.read_h5ad(path)
t = {}
if rep == "counts":
    t0 = time.perf_counter()
    sc.pp.normalize_total(a); sc.pp.log1p(a)
    if a.n_vars > 10_000:
        sc.pp.highly_variable_genes(a, n_top_genes=2000, flavor="seurat")
        a = a[:, a.var.highly_variable].copy()
    sc.pp.scale(a, max_value=10)
    sc.pp.pca(a, n_comps=64)
    t["pca"] = time.perf_counter() - t0
    rep = "X_pca"
t0 = time.perf_counter(); sc.pp.neighbors(a, n_neighbors=15, use_rep=rep); t["neighbors"] = time.perf_counter() - t0
t0 = time.perf_counter(); sc.tl.umap(a); t["umap"] = time.perf_counter() - t0
t0 = time.perf_counter(); sc.tl.leiden(a, flavor="leidenalg", resolution=1.0); t["leiden"] = time.perf_counter() - t0

G = a.obsp["connectivities"]
import igraph as ig
src, dst = G.nonzero(); m = src < dst
g = ig.Graph(n=G.shape[0], edges=list(zip(src[m], dst[m])), directed=False)
g.es["weight"] = np.asarray(G[src[m], dst[m]]).ravel()
memb = a.obs["leiden"].astype(int).values
mod = g.modularity(memb.tolist(), weights="weight")
# recall@15 of scanpy's kNN graph (distances matrix holds the 14 neighbours besides the cell)
D = a.obsp["distances"].tocsr()
X = a.obsm[rep]
m_ = min(1000, a.n_obs)
ex = NearestNeighbors(n_neighbors=15).fit(X).kneighbors(X[:m_], return_distance=False)
rec = np.mean([len(set(D[i].indices) | {i} & set(ex[i])) and len((set(D[i].indices) | {i}) & set(ex[i])) / 15 for i in range(m_)])
out = {"recall15": float(rec), "seconds": t, "total": sum(t.values()), "modularity": mod, "n_clusters": int(memb.max() + 1)}
lab = a.obs[label_key].astype(str).values if label_key != "-" else None
U = a.obsm["X_umap"]
idx = NearestNeighbors(n_neighbors=16).fit(U).kneighbors(U, return_distance=False)[:, 1:]
if lab is not None:
    out["agreement"] = float((lab[idx] == lab[:, None]).mean())
# agreement with scanpy's own Leiden clusters (labels for unlabelled data)
out["agreement_leiden"] = float((memb[idx] == memb[:, None]).mean())
np.save("/tmp/scanpy_leiden.npy", memb)
print(json.dumps(out))
