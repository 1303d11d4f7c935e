"""Reference side of examples/train_bench.rs: PyTorch CPU training throughput of the full-size
random-mask autoencoder (19,331 genes, ssl_in_scg widths, SELU, dropout 0.1), AdamW with
gradient clipping 1.0 as in the paper's recipe, on the same real spots as embed_bench.py.

Usage: python3 examples/train_bench.py MODEL_DIR N_CELLS BATCH THREADS EPOCHS
Prints one JSON line: cells_per_sec (best epoch), per-epoch values, torch version.
"""
import json
import os
import sys
import time
import warnings

import torch

warnings.simplefilter("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "models"))


def main():
    model_dir, n, batch, threads, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from embed_bench import cells
    from make_models import MaskedAutoencoder
    genes = [l.strip() for l in open(os.path.join(model_dir, "genes.csv"))][1:]
    x = torch.from_numpy(cells(genes, n))
    m = MaskedAutoencoder(len(genes), hparams=False)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
    per_epoch = []
    for _ in range(epochs):
        perm = torch.randperm(n)
        t = time.perf_counter()
        for s in range(0, n, batch):
            loss = m.training_step((x[perm[s:s + batch]],), 0)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
        per_epoch.append(n / (time.perf_counter() - t))
    print(json.dumps({"cells_per_sec": max(per_epoch), "per_epoch": per_epoch, "loss": float(loss),
                      "torch": torch.__version__, "threads": threads}))


if __name__ == "__main__":
    main()
