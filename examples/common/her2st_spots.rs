//! Real spots for the model benchmarks (embed_bench, train_bench): HER2+ breast cancer ST
//! sections from ../shared/data, about 2,000 non-zero genes per spot.

use std::path::Path;

use cellscope::data::genes::{GeneAlignment, GeneList, dataset_genes};
use cellscope::data::preprocess::{TargetSum, log1p, normalize_total};
use cellscope::data::{CsrMatrix, open};

const FILES: [&str; 4] = [
    "her2st_A1.h5ad",
    "her2st_B1.h5ad",
    "her2st_C1.h5ad",
    "her2st_B4.h5ad",
];

/// `n` real spatial spots (the four HER2+ ST sections, repeated as needed), normalize_total(1e4)
/// + log1p, aligned to `genes` (zero fill).
pub fn cells(genes: &GeneList, n: usize) -> CsrMatrix {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let mut parts = Vec::new();
    for f in FILES {
        let a = open(&data.join(f)).expect("dataset");
        let mut x = a.x.to_csr();
        normalize_total(&mut x, TargetSum::Fixed(1e4));
        log1p(&mut x);
        parts.push(GeneAlignment::new(genes, &dataset_genes(&a), None).map_matrix(&x));
    }
    let mut out = CsrMatrix {
        n_rows: 0,
        n_cols: genes.len(),
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
    };
    'fill: loop {
        for p in &parts {
            for i in 0..p.n_rows {
                if out.n_rows == n {
                    break 'fill;
                }
                let (idx, val) = p.row(i);
                out.indices.extend_from_slice(idx);
                out.data.extend_from_slice(val);
                out.indptr.push(out.indices.len() as u64);
                out.n_rows += 1;
            }
        }
    }
    out
}
