"""Histology timings side by side (BENCHMARKS.md): cellscope against PyTorch on the same input.

1. Features: DenseNet-121 (torchvision's architecture, random weights: none can be downloaded
   here) on 224-px patches of one HER2+ section's spots. cellscope: `histology features
   --encoder random:densenet121 --no-cache` (includes reading the JPEG and start-up); PyTorch:
   torchvision `densenet121().features` + average pool on the same patches (PIL crops; the JPEG
   decode counted), batch 16, eval, no_grad.
2. mclSTExp training on frozen features: cellscope's `histology train` on four sections (features
   from the cache, so the time is the network's) against the fixture's PyTorch model of the
   public code (tests/fixtures/histology/make_mclstexp_reference.py, full size: 785 genes, 1024-d
   features, 8 heads of 64, 2 blocks) on the same features and expression, Adam 1e-4 / 1e-3,
   batch 128, the same epochs.

    python3 examples/histology_bench.py --data ../shared/data [--epochs 90]
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
import torch
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../tests/fixtures/histology"))
BIN = os.environ.get("CELLSCOPE", "cellscope")
Image.MAX_IMAGE_PIXELS = None


def timed(args):
    t0 = time.perf_counter()
    subprocess.run([BIN] + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def torch_features(img_path, spots):
    t0 = time.perf_counter()
    img = Image.open(img_path).convert("RGB")
    patches = [np.asarray(img.crop((int(x) - 112, int(y) - 112, int(x) + 112, int(y) + 112)))
               for x, y in np.floor(spots)]
    x = torch.tensor(np.stack(patches), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    m = torchvision.models.densenet121().features.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(x), 16):
            out.append(m(x[b:b + 16]).mean(dim=(2, 3)))
    return time.perf_counter() - t0, torch.cat(out).numpy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=90)
    a = p.parse_args()
    d = lambda s, e: os.path.join(a.data, f"her2st_{s}{e}")
    sec = ad.read_h5ad(d("C2", ".h5ad"))
    with tempfile.TemporaryDirectory() as tmp:
        ours = timed(["histology", "features", "--image", d("C2", "_HE.jpg"), "--spots",
                      d("C2", ".h5ad"), "--encoder", "random:densenet121", "--no-cache",
                      "--backend", "cpu", "--out", os.path.join(tmp, "f.h5ad")])
        ref, _ = torch_features(d("C2", "_HE.jpg"), np.asarray(sec.obsm["spatial"]))
        print(json.dumps({"step": "densenet121 features", "spots": sec.n_obs,
                          "cellscope_s": ours, "pytorch_s": ref, "ratio": ref / ours}), flush=True)
        # mclSTExp training on frozen features (the cache filled by a first, untimed run).
        train = [d(s, ".h5ad") for s in ("C2", "C3", "C4", "C5")]
        common = ["histology", "train", "--encoder", "random:densenet121", "--sections", *train,
                  "--genes", os.path.join(a.data, "her2st_hvg_785.csv"), "--backend", "cpu"]
        timed(common + ["--epochs", "1", "--out", os.path.join(tmp, "warm")])
        ours = timed(common + ["--epochs", str(a.epochs), "--out", os.path.join(tmp, "m")])
        ref = torch_training(a, train, tmp)
        print(json.dumps({"step": f"mclSTExp training, {a.epochs} epochs", "cellscope_s": ours,
                          "pytorch_s": ref, "ratio": ref / ours}), flush=True)


def torch_training(a, train, tmp):
    from make_mclstexp_reference import Net
    import make_mclstexp_reference as ref

    genes = [g.strip() for g in open(os.path.join(a.data, "her2st_hvg_785.csv")) if g.strip()][1:]
    ref.G, ref.IMG, ref.PROJ, ref.HEADS, ref.DH = len(genes), 1024, 256, 8, 64
    exprs, poss, feats = [], [], []
    for path in train:
        s = ad.read_h5ad(path)
        counts = s[:, genes].X
        counts = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
        lib = counts.sum(axis=1, keepdims=True)
        exprs.append(np.log10(1 + counts / np.maximum(lib, 1e-12) * np.median(lib)))
        poss.append(s.obs[["x", "y"]].to_numpy().astype(np.int64))
        out = os.path.join(tmp, os.path.basename(path))
        subprocess.run([BIN, "histology", "features", "--image", path.replace(".h5ad", "_HE.jpg"),
                        "--spots", path, "--encoder", "random:densenet121", "--backend", "cpu",
                        "--out", out], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        x = ad.read_h5ad(out).X
        feats.append(x.toarray() if hasattr(x, "toarray") else np.asarray(x))
    e = torch.tensor(np.concatenate(exprs), dtype=torch.float32)
    pos = torch.tensor(np.concatenate(poss))
    f = torch.tensor(np.concatenate(feats), dtype=torch.float32)
    torch.manual_seed(0)
    net = Net(int(pos.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=1e-3)
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        order = torch.randperm(len(e))
        for b in range(0, len(e), 128):
            idx = order[b:b + 128]
            loss = net.loss(e[idx], pos[idx], f[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
