"""Spatial-domain experiments of EXPERIMENTS.md: STAGATE, GraphST and BANKSY through
`cellscope analyze`, each on genes, on the PCA and on an SSL embedding (the study's "-RM"),
several seeds; ARI and NMI against a ground-truth column, mean and spread.

DATA must hold obsm['X_cellscope'] for the SSL rows (`cellscope pretrain --objective
random-mask` on the same file, then `cellscope embed`); BANKSY runs on the analysis
representation (`--use-rep pca` for "PCA", X_cellscope for "SSL"; it has no gene row).

    python3 examples/domain_experiments.py DATA.h5ad --label layer --k 7 [--epochs 100] \
        [--seeds 0,1,2] [--methods stagate,graphst,banksy] [--reps hvg,pca,X_cellscope]

Prints one JSON line per run, then a Markdown table.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

BIN = os.environ.get("CELLSCOPE", "cellscope")


def one(data, method, rep, k, label, epochs, seed):
    with tempfile.TemporaryDirectory() as d:
        m, out = os.path.join(d, "m.json"), os.path.join(d, "o.h5ad")
        cmd = [BIN, "analyze", data, "--spatial-domains", str(k), "--label-key", label,
               "--seed", str(seed), "--metrics-json", m, "--out", out, "--domains", method]
        if method == "banksy":
            cmd += ["--use-rep", "pca" if rep == "pca" else rep]
        else:
            cmd += ["--domain-rep", rep, "--epochs", str(epochs)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = json.load(open(m))["spatial_domain"]
    secs = r["method"].get("seconds_training")
    return r["vs_label"]["ari"], r["vs_label"]["nmi"], secs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--label", required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="stagate,graphst,banksy")
    p.add_argument("--reps", default="hvg,pca,X_cellscope")
    a = p.parse_args()
    rows = []
    for method in a.methods.split(","):
        for rep in a.reps.split(","):
            if method == "banksy" and rep == "hvg":
                continue
            res = []
            for seed in map(int, a.seeds.split(",")):
                ari, nmi, secs = one(a.data, method, rep, a.k, a.label, a.epochs, seed)
                res.append((ari, nmi))
                print(json.dumps({"method": method, "rep": rep, "seed": seed, "ari": ari,
                                  "nmi": nmi, "seconds_training": secs}), flush=True)
            r = np.array(res)
            rows.append((method, rep, r[:, 0].mean(), r[:, 0].std(), r[:, 1].mean(),
                         r[:, 1].std(), len(res)))
    print("| method | input | ARI mean ± sd | NMI mean ± sd | seeds |")
    print("|---|---|---|---|---|")
    for m, rep, am, asd, nm, nsd, n in rows:
        print(f"| {m} | {rep} | {am:.3f} ± {asd:.3f} | {nm:.3f} ± {nsd:.3f} | {n} |")


if __name__ == "__main__":
    main()
