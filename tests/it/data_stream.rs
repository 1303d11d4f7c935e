//! Row-block streaming of X gives exactly the rows of a full read.

use crate::common;

use cellscope::data::h5ad::H5adReader;
use common::shared_data;

#[test]
fn row_blocks_equal_full_read() {
    for (name, block) in [
        ("kang_pbmc_ctrl.h5ad", 1000),
        ("dlpfc_151675.h5ad", 777),
        ("merfish_hypothalamus_animal1.h5ad", 4096),
    ] {
        let r = H5adReader::open(shared_data().join(name)).expect("open");
        let full = r.read_matrix("X").expect("full").to_csr();
        let mut rows = 0;
        for b in r.row_blocks("X", block).expect("blocks") {
            let (start, b) = b.expect("block");
            assert_eq!(start, rows);
            assert!(b.n_rows <= block);
            for i in 0..b.n_rows {
                assert_eq!(b.row(i), full.row(start + i), "{name}: row {}", start + i);
            }
            rows += b.n_rows;
        }
        assert_eq!(rows, full.n_rows, "{name}");
    }
}
