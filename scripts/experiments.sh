#!/usr/bin/env bash
# Re-runs the real-data experiments of EXPERIMENTS.md and prints the lines their tables quote.
# Usage: scripts/experiments.sh [WORK_DIR]   (release binary from the shared target directory)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh >/dev/null
cargo build --release -q
B="$CARGO_TARGET_DIR/release/cellscope"
D=../shared/data
W=${1:-$(mktemp -d)}
MAP=assets/label_maps/hypothalamus_scrna_to_merfish.csv
mkdir -p "$W"
q() { "$B" "$@" 2>/dev/null; }
echo "== PBMC transfer in miniature (work dir $W)"
q analyze $D/pbmc68k_reduced.h5ad --use-rep pca --label-key bulk_labels --out "$W/pbmc_pca.h5ad" | grep "kNN classifier" | sed 's/^/PCA: /'
for obj in random-mask barlow-twins; do
  rm -rf "$W/$obj"
  "$B" pretrain $D/kang_pbmc_ctrl.h5ad --objective $obj --genes $D/pbmc68k_reduced.h5ad --epochs 50 --batch-size 256 --out "$W/$obj" 2>&1 | grep "final train loss" | sed "s/^/$obj pretrain: /"
  q evaluate $D/pbmc68k_reduced.h5ad --model "$W/$obj" --label-key bulk_labels | grep -E "zero-shot|reconstruction" | sed "s/^/$obj: /"
done
for s in 0 1 2; do
  rm -rf "$W/ft$s" "$W/sup$s"
  q finetune $D/pbmc68k_reduced.h5ad --label-key bulk_labels --model "$W/random-mask" --train-layers all --epochs 100 --seed $s --out "$W/ft$s" | grep -i "test" | sed "s/^/fine-tuned seed $s: /"
  q finetune $D/pbmc68k_reduced.h5ad --label-key bulk_labels --epochs 100 --seed $s --out "$W/sup$s" | grep -i "test" | sed "s/^/supervised seed $s: /"
done
echo "== Hypothalamus"
rm -rf "$W/rm_mer" "$W/ft_hyp" "$W/sup_hyp"
"$B" pretrain $D/merfish_hypothalamus_animal1.h5ad --objective random-mask --genes $D/hypothalamus_scrna_ref.h5ad --epochs 40 --batch-size 256 --out "$W/rm_mer" 2>&1 | grep "final train loss" | sed 's/^/pretrain: /'
q finetune $D/hypothalamus_scrna_ref.h5ad --label-key cell_type --model "$W/rm_mer" --epochs 100 --out "$W/ft_hyp" | grep -i "test" | sed 's/^/fine-tuned: /'
q predict $D/merfish_hypothalamus_animal1.h5ad --model "$W/ft_hyp" --label-key Cell_class --label-map $MAP --out "$W/pred_ft.h5ad" | sed 's/^/fine-tuned on MERFISH: /'
q finetune $D/hypothalamus_scrna_ref.h5ad --label-key cell_type --epochs 100 --out "$W/sup_hyp" | grep -i "test" | sed 's/^/supervised: /'
q predict $D/merfish_hypothalamus_animal1.h5ad --model "$W/sup_hyp" --label-key Cell_class --label-map $MAP --out "$W/pred_sup.h5ad" | sed 's/^/supervised on MERFISH: /'
q transfer --reference $D/hypothalamus_scrna_ref.h5ad --label-key cell_type --query $D/merfish_hypothalamus_animal1.h5ad \
  --label-map $MAP --query-label-key Cell_class --model "$W/rm_mer" --out "$W/tr_rm.h5ad" | grep -iE "accuracy" | head -1 | sed 's/^/kNN transfer on SSL embedding: /'
echo "== scSSL-Bench comparison (issue 24): HER2+ A1/B1/C1 and hypothalamus scRNA-seq + MERFISH"
python3 examples/make_scssl_inputs.py >/dev/null
for s in 0 1 2; do
  rm -rf "$W/bench_her2_$s" "$W/bench_hyp_$s"
  q benchmark bench-data/her2st_ABC.h5ad --batch-key patient --label-key label --epochs 20 --seed $s --backend cpu --out "$W/bench_her2_$s" | sed "s/^/her2st seed $s: /"
  q benchmark bench-data/hypothalamus_scrna_merfish.h5ad --batch-key technology --label-key cell_class --epochs 20 --seed $s --backend cpu --out "$W/bench_hyp_$s" | sed "s/^/hypothalamus seed $s: /"
done
