"""Inputs of the scSSL-Bench comparison (`cellscope benchmark`, EXPERIMENTS.md), from
../shared/data, written to bench-data/ (ignored by git):

- her2st_ABC.h5ad: HER2+ sections A1, B1, C1 (three patients) concatenated on their common
  genes; obs['patient'] (the batch) and obs['label'] (pathologist region; 'undetermined'
  spots dropped); counts as stored.
- hypothalamus_scrna_merfish.h5ad: the hypothalamus scRNA-seq reference and MERFISH animal 1
  on their 134 common genes; obs['technology'] (the batch) and obs['cell_class']: MERFISH's
  Cell_class without its trailing number (Endothelial 1/2/3 -> Endothelial), the reference's
  cell_type mapped through assets/label_maps/hypothalamus_scrna_to_merfish.csv the same way;
  cells without a counterpart (Ambiguous, Unstable, Fibroblast) dropped; obsm['X_pca'] the
  scanpy PCA (50) of the log-normalised counts.

Usage: python3 examples/make_scssl_inputs.py
"""
import os
import re

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../shared/data")
OUT = os.path.join(HERE, "../bench-data")


def her2st():
    parts = []
    for s in ["A1", "B1", "C1"]:
        a = ad.read_h5ad(os.path.join(DATA, f"her2st_{s}.h5ad"))
        a.obs = pd.DataFrame({"patient": s[0], "label": a.obs["label"].astype(str).values}, index=[f"{s}_{i}" for i in a.obs_names])
        a.X = sp.csr_matrix(a.X)
        parts.append(a[a.obs["label"] != "undetermined"].copy())
    out = ad.concat(parts, join="inner")
    out.write_h5ad(os.path.join(OUT, "her2st_ABC.h5ad"))
    print("her2st_ABC", out.shape, out.obs.groupby(["patient", "label"]).size().unstack(fill_value=0))


def coarse(name):
    return re.sub(r"\s+\d+$", "", name)


def hypothalamus():
    ref = ad.read_h5ad(os.path.join(DATA, "hypothalamus_scrna_ref.h5ad"))
    mer = ad.read_h5ad(os.path.join(DATA, "merfish_hypothalamus_animal1.h5ad"))
    table = pd.read_csv(os.path.join(HERE, "../assets/label_maps/hypothalamus_scrna_to_merfish.csv"), comment="#")
    table = table.dropna()
    mapping = {r: coarse(q) for r, q in zip(table["reference"], table["query"])}
    genes = [g for g in ref.var_names if g in set(mer.var_names)]
    ref = ref[:, genes].copy()
    mer = mer[:, genes].copy()
    ref.obs = pd.DataFrame({"technology": "scRNA-seq", "cell_class": [mapping.get(c, "") for c in ref.obs["cell_type"].astype(str)]},
                           index=["ref_" + i for i in ref.obs_names])
    mer.obs = pd.DataFrame({"technology": "MERFISH", "cell_class": [coarse(c) for c in mer.obs["Cell_class"].astype(str)]},
                           index=["merfish_" + i for i in mer.obs_names])
    ref.X = sp.csr_matrix(ref.X, dtype=np.float32)
    mer.X = sp.csr_matrix(mer.X, dtype=np.float32)
    out = ad.concat([ref, mer], join="inner")
    keep = out.obs["cell_class"].isin(set(mapping.values())) & (out.obs["cell_class"] != "")
    out = out[keep].copy()
    # The unintegrated PCA (scanpy: normalize_total, log1p, 50 components) for the speed
    # comparison of `evaluate --use-rep X_pca` with scib-metrics (BENCHMARKS.md).
    import scanpy as sc
    norm = out.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.pca(norm, n_comps=50)
    out.obsm["X_pca"] = norm.obsm["X_pca"]
    out.write_h5ad(os.path.join(OUT, "hypothalamus_scrna_merfish.h5ad"))
    print("hypothalamus", out.shape, out.obs.groupby(["technology", "cell_class"]).size().unstack(fill_value=0))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    her2st()
    hypothalamus()
