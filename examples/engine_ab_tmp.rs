use cellscope::model::{BackendChoice, Engine, load_model};
use std::time::Instant;
#[path = "common/her2st_spots.rs"]
mod her2st_spots;
fn main() {
    let dir = std::path::Path::new("bench-data/full_model");
    let model = load_model(&dir.join("random_mask.ckpt"), Some(&dir.join("genes.csv"))).unwrap();
    let x = her2st_spots::cells(&model.genes, 8192);
    let e = Engine::new(&model.weights, BackendChoice::Cpu).unwrap();
    let _ = e.embed_rows(&x, 0..1024);
    let mut t = Vec::new();
    for _ in 0..12 {
        let s = Instant::now();
        let mut r0 = 0;
        while r0 < x.n_rows {
            let r1 = (r0 + 1024).min(x.n_rows);
            std::hint::black_box(e.embed_rows(&x, r0..r1));
            r0 = r1;
        }
        t.push(x.n_rows as f64 / s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    println!("cells/s max {:.0} median {:.0}", t[11], t[6]);
}
