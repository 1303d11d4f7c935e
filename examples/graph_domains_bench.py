"""STAGATE and GraphST side by side (BENCHMARKS.md, EXPERIMENTS.md): cellscope's (`cellscope
analyze --domains ...`) against the PyTorch references on the CPU, on the same input matrix,
the same graph and the same epochs, each clustered by a tied-covariance Gaussian mixture
(mclust EEE's model) into K domains and scored by ARI / NMI against a ground-truth column.

References: STAGATE written from its public code (the torch-geometric GATConv of
tests/fixtures/graph/make_stagate_reference.py, Train_STAGATE.py's loop: Adam 1e-3, weight
decay 1e-4, clip 5); GraphST from its PyPI package (`GraphST.GraphST`, 3-NN graph, its own
training loop), with `obsm['feat']` set to the same input.

Input (`--rep`): `hvg` = the methods' tutorials (scanpy seurat_v3 HVGs on counts,
normalize_total 1e4, log1p; GraphST also scale(zero_center=False, max_value=10)), or an obsm
key (e.g. X_cellscope from a `cellscope embed` output, X_pca). The input is written to a
temporary .h5ad as obsm['X_in'], which cellscope reads with `--domain-rep X_in`.

    python3 examples/graph_domains_bench.py DATA.h5ad --label layer --k 7 --epochs 100 \
        [--rep hvg] [--methods stagate,graphst] [--seeds 0,1,2] [--skip-reference]

Prints one JSON line per method and seed: seconds (training only) and ARI / NMI of both, and
the ARI of cellscope's latent clustered by the reference's scikit-learn mixture
(`ari_sklearn_gmm`), which separates training from clustering.
Needs torch, torch-geometric, anndata, scanpy, scikit-learn; GraphST and POT
(`pip install --no-deps GraphST POT`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import anndata as ad
import numpy as np
import scanpy as sc
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/fixtures/graph"))
from make_stagate_reference import GATConv, stagate_forward  # noqa: E402

BIN = os.environ.get("CELLSCOPE", "cellscope")


def gene_input(a, scale):
    b = a.copy()
    if b.n_vars > 3000:
        sc.pp.highly_variable_genes(b, flavor="seurat_v3", n_top_genes=3000)
        b = b[:, b.var["highly_variable"]].copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    if scale:
        sc.pp.scale(b, zero_center=False, max_value=10)
    x = b.X.toarray() if hasattr(b.X, "toarray") else np.asarray(b.X)
    return x.astype(np.float32)


def radius_graph(pos, r):
    nn = NearestNeighbors(radius=r).fit(pos)
    _, idx = nn.radius_neighbors(pos)
    src = [i for i in range(len(pos)) for j in idx[i] if j != i]
    dst = [j for i in range(len(pos)) for j in idx[i] if j != i]
    return src, dst


def default_radius(pos):
    d, _ = NearestNeighbors(n_neighbors=2).fit(pos).kneighbors(pos)
    return 1.5 * float(np.median(d[:, 1][d[:, 1] > 0]))


def torch_stagate(x, pos, radius, epochs, seed):
    torch.manual_seed(seed)
    src, dst = radius_graph(pos, radius)
    n = len(pos)
    # Transfer_pytorch_Data: edge_index = nonzero(G + I), G[cell1, cell2] = 1.
    edges = sorted(set(zip(src, dst)) | {(i, i) for i in range(n)})
    edge_index = torch.tensor(edges, dtype=torch.long).t()
    xt = torch.tensor(x)
    g, h1, h2 = x.shape[1], 512, 30
    convs = [GATConv(g, h1), GATConv(h1, h2), GATConv(h2, h1), GATConv(h1, g)]
    model = torch.nn.ModuleList(convs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        _, out = stagate_forward(convs, xt, edge_index)
        loss = F.mse_loss(xt, out)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        z, _ = stagate_forward(convs, xt, edge_index)
    return z.numpy(), time.perf_counter() - t0


def torch_graphst(a, x, epochs, seed):
    from GraphST.GraphST import GraphST
    from sklearn.decomposition import PCA

    b = ad.AnnData(X=np.zeros((a.n_obs, 1), dtype=np.float32), obs=a.obs.copy())
    b.obsm["spatial"] = np.asarray(a.obsm["spatial"], dtype=np.float64)
    b.var["highly_variable"] = True
    b.obsm["feat"] = x
    b.obsm["feat_a"] = x[np.random.permutation(len(x))]
    model = GraphST(b, device=torch.device("cpu"), epochs=epochs, random_seed=seed,
                    datatype="Stereo" if a.n_obs > 20000 else "10X")
    t0 = time.perf_counter()
    out = model.train()
    secs = time.perf_counter() - t0
    emb = out.obsm["emb"]
    return PCA(n_components=20, random_state=42).fit_transform(emb), secs


def cluster(z, k, seed):
    # A collapsed latent (some reference runs on embeddings) leaves sklearn's default
    # regularisation short: retry with more, as mclust would fit a degenerate model anyway.
    for reg in (1e-6, 1e-4, 1e-2):
        try:
            gm = GaussianMixture(k, covariance_type="tied", random_state=seed, reg_covar=reg)
            return gm.fit(z).predict(z)
        except ValueError:
            continue
    return np.zeros(len(z), dtype=int)


def scores(truth, pred):
    keep = np.array([t not in ("nan", "NA", "", "None") for t in truth])
    return (adjusted_rand_score(truth[keep], pred[keep]),
            normalized_mutual_info_score(truth[keep], pred[keep]))


def run_cellscope(path, method, k, epochs, radius, label, seed):
    with tempfile.TemporaryDirectory() as d:
        m, out = os.path.join(d, "m.json"), os.path.join(d, "out.h5ad")
        cmd = [BIN, "analyze", path, "--domains", method, "--domain-rep", "X_in",
               "--epochs", str(epochs), "--spatial-domains", str(k), "--label-key", label,
               "--seed", str(seed), "--metrics-json", m, "--out", out]
        if method == "stagate":
            cmd += ["--radius", str(radius)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = json.load(open(m))
        z = np.asarray(ad.read_h5ad(out).obsm[f"X_{method}"], dtype=np.float64)
    d = r["spatial_domain"]
    return d["method"]["seconds_training"], d["vs_label"]["ari"], d["vs_label"]["nmi"], z


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--label", required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--rep", default="hvg")
    p.add_argument("--methods", default="stagate,graphst")
    p.add_argument("--seeds", default="0")
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    a = ad.read_h5ad(args.data)
    pos = np.asarray(a.obsm["spatial"], dtype=np.float64)
    truth = a.obs[args.label].astype(str).to_numpy()
    radius = default_radius(pos)
    for method in args.methods.split(","):
        x = (gene_input(a, method == "graphst") if args.rep == "hvg"
             else np.asarray(a.obsm[args.rep], dtype=np.float32))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "in.h5ad")
            b = a.copy()
            b.obsm["X_in"] = x
            b.write_h5ad(path)
            for seed in map(int, args.seeds.split(",")):
                row = {"method": method, "rep": args.rep, "cells": a.n_obs,
                       "features": x.shape[1], "epochs": args.epochs, "seed": seed}
                secs, ari, nmi, z = run_cellscope(path, method, args.k, args.epochs, radius,
                                                  args.label, seed)
                if method == "graphst":
                    from sklearn.decomposition import PCA
                    z = PCA(n_components=20, random_state=42).fit_transform(z)
                # cellscope's latent clustered by the reference's scikit-learn mixture too, so
                # the training and the clustering can be told apart.
                ari_sk = scores(truth, cluster(z, args.k, seed))[0]
                row["cellscope"] = {"seconds": secs, "ari": ari, "nmi": nmi,
                                    "ari_sklearn_gmm": ari_sk}
                if not args.skip_reference:
                    np.random.seed(seed)
                    if method == "stagate":
                        z, s = torch_stagate(x, pos, radius, args.epochs, seed)
                    else:
                        z, s = torch_graphst(a, x, args.epochs, seed)
                    ari_t, nmi_t = scores(truth, cluster(z, args.k, seed))
                    row["pytorch"] = {"seconds": s, "ari": ari_t, "nmi": nmi_t}
                    row["speedup"] = s / secs
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
