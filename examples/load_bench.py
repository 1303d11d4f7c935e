"""Reference side of examples/load_bench.rs: times anndata.read_h5ad on one file and reports the
peak resident memory it added. Prints one JSON line: {"secs": ..., "peak_extra_bytes": ...}.

Usage: python3 examples/load_bench.py FILE.h5ad [WARMUP.h5ad]
A small WARMUP file is read first so that library set-up is not counted as memory for FILE.
"""
import json
import sys
import time


def vm_hwm():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def vm_rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


import anndata as ad  # noqa: E402  (imported before the baseline is taken)

if len(sys.argv) > 2:
    ad.read_h5ad(sys.argv[2])
base = max(vm_rss(), vm_hwm())
t = time.perf_counter()
a = ad.read_h5ad(sys.argv[1])
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "peak_extra_bytes": vm_hwm() - base, "shape": list(a.shape)}))
