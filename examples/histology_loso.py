"""Leave-one-section-out evaluation of expression-from-H&E (EXPERIMENTS.md, BENCHMARKS.md): for
each held-out section, `cellscope histology train` on the others and `cellscope histology
predict` on the held-out image at its spots; per-gene Pearson correlation averaged over all
genes (ACG), the 50 most expressed (HEG) and the 50 most variable (HVG), MSE, MAE; wall time of
training and prediction (features come from the cache after their first computation, which is
timed separately as `features_s` on the first seed).

    python3 examples/histology_loso.py --data ../shared/data --sections B4,C2,C3,C4,C5 \
        --config mclstexp:random:densenet121 --config knn:colour-texture --seeds 0,1,2 \
        [--epochs 90] [--out results.jsonl]

A config is METHOD:ENCODER (METHOD mclstexp or knn; ENCODER as `--encoder` takes it). Prints
one JSON line per config, seed and held-out section, then the means per config.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

BIN = os.environ.get("CELLSCOPE", "cellscope")


def run(args):
    t0 = time.perf_counter()
    r = subprocess.run([BIN] + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cellscope {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--sections", default="B4,C2,C3,C4,C5")
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--out")
    a = p.parse_args()
    names = a.sections.split(",")
    data = lambda s, ext: os.path.join(a.data, f"her2st_{s}{ext}")
    genes = os.path.join(a.data, "her2st_hvg_785.csv")
    rows = []
    out = open(a.out, "a") if a.out else None
    for config in a.config:
        method, encoder = config.split(":", 1)
        for seed in map(int, a.seeds.split(",")):
            for held in names:
                train = [data(s, ".h5ad") for s in names if s != held]
                with tempfile.TemporaryDirectory() as d:
                    model, pred, m = (os.path.join(d, x) for x in ("model", "p.h5ad", "m.json"))
                    t_train = run(["histology", "train", "--method", method, "--encoder", encoder,
                                   "--sections", *train, "--genes", genes, "--epochs",
                                   str(a.epochs), "--seed", str(seed), "--backend", "cpu",
                                   "--out", model])
                    t_pred = run(["histology", "predict", "--model", model, "--image",
                                  data(held, "_HE.jpg"), "--spots", data(held, ".h5ad"),
                                  "--backend", "cpu", "--out", pred, "--metrics-json", m])
                    s = json.load(open(m))
                row = {"config": config, "seed": seed, "held_out": held, "train_s": t_train,
                       "predict_s": t_pred, **{k: s[k] for k in ("acg", "heg", "hvg", "mse", "mae")}}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if out:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
    for config in a.config:
        r = [x for x in rows if x["config"] == config]
        per_seed = {}
        for x in r:
            per_seed.setdefault(x["seed"], []).append(x)
        summary = {"config": config, "folds": len(r)}
        for k in ("acg", "heg", "hvg", "mse", "mae"):
            means = [np.mean([x[k] for x in v]) for v in per_seed.values()]
            summary[k] = f"{np.mean(means):.4f} ± {np.std(means):.4f}"
        summary["train_s"] = round(float(np.mean([x["train_s"] for x in r])), 1)
        summary["predict_s"] = round(float(np.mean([x["predict_s"] for x in r])), 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
