"""Reference side of examples/embed_bench.rs: PyTorch CPU inference of the full-size ssl_in_scg
encoder on real spatial spots, dense input as users run it.

Usage: python3 examples/embed_bench.py MODEL_DIR N_CELLS BATCH THREADS OUT.json
MODEL_DIR holds random_mask.ckpt and genes.csv (tests/fixtures/models/make_models.py 19331 DIR).
Writes the first 256 embeddings to OUT.json and prints one JSON line (torch version, threads,
nnz_per_cell). Then, for each line read from stdin, times one pass over the N_CELLS cells in
batches of BATCH and prints its cells/s, so that the caller can interleave these passes with its
own and both sides meet the same machine state.
"""
import json
import os
import sys
import time
import warnings

import anndata as ad
import numpy as np
import scanpy as sc
import torch

warnings.simplefilter("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "models"))
DATA = os.path.join(HERE, "..", "..", "shared", "data")
FILES = ["her2st_A1.h5ad", "her2st_B1.h5ad", "her2st_C1.h5ad", "her2st_B4.h5ad"]


def cells(genes, n):
    """normalize_total(1e4) + log1p, aligned to the model genes by case-insensitive symbol."""
    pos = {}
    for i, g in enumerate(genes):
        pos.setdefault(g.upper(), i)
    blocks = []
    for f in FILES:
        a = ad.read_h5ad(os.path.join(DATA, f))
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        x = a.X.toarray()
        dense = np.zeros((a.n_obs, len(genes)), dtype=np.float32)
        seen = set()
        for j, g in enumerate(a.var_names):
            k = pos.get(g.upper())
            if k is not None and k not in seen:
                seen.add(k)
                dense[:, k] = x[:, j]
        blocks.append(dense)
    x = np.concatenate(blocks)
    reps = -(-n // x.shape[0])
    return np.tile(x, (reps, 1))[:n]


def main():
    model_dir, n, batch, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(threads)
    from make_models import MaskedAutoencoder
    genes = [l.strip() for l in open(os.path.join(model_dir, "genes.csv"))][1:]
    ckpt = torch.load(os.path.join(model_dir, "random_mask.ckpt"), map_location="cpu", weights_only=False)
    m = MaskedAutoencoder(len(genes))
    m.load_state_dict(ckpt["state_dict"])
    m.eval()
    x = torch.from_numpy(cells(genes, n))
    nnz = float((x != 0).sum(dim=1).float().mean())
    with torch.no_grad():
        m.encoder(x[:batch])  # warm-up
        first = m.encoder(x[:256]).tolist()
        json.dump(first, open(out, "w"))
        print(json.dumps({"nnz_per_cell": nnz, "torch": torch.__version__, "threads": threads}), flush=True)
        for _ in sys.stdin:
            t = time.perf_counter()
            for s in range(0, n, batch):
                m.encoder(x[s:s + batch])
            print(n / (time.perf_counter() - t), flush=True)


if __name__ == "__main__":
    main()
