//! BGI Stereo-seq GEM text (`.gem` or `.gem.gz`): `#` header lines, then tab-separated
//! `geneID x y MIDCount [ExonCount]` (older files: `UMICount`), one line per gene and DNB.
//!
//! Binned into square spots as stereopy's `read_gem(bin_type="bins")` does: a spot is
//! `bin x bin` DNBs, its corner `(floor(x / bin) * bin, floor(y / bin) * bin)` in DNB
//! coordinates (`obsm['spatial']`; DNBs are 500 nm apart) and its name `"<x0>_<y0>"`; spots
//! sorted by `(x0, y0)`, genes in order of first appearance, counts summed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use ndarray::Array2;

use super::{VendorInfo, file_name, new_anndata};
use crate::data::anndata::AnnData;
use crate::data::error::{DataError, Result};
use crate::data::matrix::CsrMatrix;

/// stereopy's default bin size (bin50: 25 µm spots).
pub const DEFAULT_BIN: u32 = 50;

/// Whether `path` is named like a GEM file.
pub fn is_gem(path: &Path) -> bool {
    let n = file_name(path).to_lowercase();
    path.is_file() && (n.ends_with(".gem") || n.ends_with(".gem.gz"))
}

/// Reads a GEM file binned at `bin` DNBs.
///
/// # Errors
/// An unreadable file, no header line with `geneID`, `x`, `y` and `MIDCount` (or `UMICount`), a
/// line with a non-integer coordinate or count, `bin` 0.
pub fn read_gem(path: &Path, bin: u32) -> Result<(AnnData, VendorInfo)> {
    if bin == 0 {
        return Err(DataError::invalid(
            path,
            "bin size",
            "must be at least 1 DNB",
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader: Box<dyn std::io::Read> = if file_name(path).to_lowercase().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut metadata = Vec::new();
    let mut cols: Option<[usize; 4]> = None;
    let mut gene_of: HashMap<String, u32> = HashMap::new();
    let mut genes: Vec<String> = Vec::new();
    let mut spot_of: HashMap<(u32, u32), u32> = HashMap::new();
    let mut triples: Vec<(u32, u32, f32)> = Vec::new();
    for (k, line) in BufReader::new(reader).lines().enumerate() {
        let at = |what: &str| format!("line {}{what}", k + 1);
        let line = line.map_err(|e| DataError::invalid(path, &at(""), e.to_string()))?;
        if let Some(meta) = line.strip_prefix('#') {
            if let Some((key, value)) = meta.split_once('=') {
                metadata.push((key.trim().to_string(), value.trim().to_string()));
            }
            continue;
        }
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let Some(c) = cols else {
            let find = |names: &[&str]| fields.iter().position(|f| names.contains(f));
            cols = match (
                find(&["geneID"]),
                find(&["x"]),
                find(&["y"]),
                find(&["MIDCount", "UMICount", "MIDCounts"]),
            ) {
                (Some(g), Some(x), Some(y), Some(n)) => Some([g, x, y, n]),
                _ => {
                    return Err(DataError::invalid(
                        path,
                        &at(" (header)"),
                        format!("columns {fields:?}; expected geneID, x, y and MIDCount"),
                    ));
                }
            };
            continue;
        };
        if line.is_empty() {
            continue;
        }
        let int = |i: usize, what: &str| -> Result<u32> {
            fields
                .get(i)
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| {
                    DataError::invalid(
                        path,
                        &at(&format!(", {what}")),
                        format!("expected a non-negative integer, found {:?}", fields.get(i)),
                    )
                })
        };
        let (x, y, n) = (int(c[1], "x")?, int(c[2], "y")?, int(c[3], "MIDCount")?);
        let gene = fields[c[0]];
        let g = match gene_of.get(gene) {
            Some(&g) => g,
            None => {
                let g = genes.len() as u32;
                gene_of.insert(gene.to_string(), g);
                genes.push(gene.to_string());
                g
            }
        };
        let next = spot_of.len() as u32;
        let s = *spot_of
            .entry((x / bin * bin, y / bin * bin))
            .or_insert(next);
        triples.push((s, g, n as f32));
    }
    if cols.is_none() {
        return Err(DataError::missing(
            path,
            "header",
            "a geneID, x, y, MIDCount header line",
        ));
    }
    // Spots sorted by their corner.
    let mut corners: Vec<((u32, u32), u32)> = spot_of.into_iter().collect();
    corners.sort_unstable();
    let mut rank = vec![0u32; corners.len()];
    for (r, (_, s)) in corners.iter().enumerate() {
        rank[*s as usize] = r as u32;
    }
    let x = binned_matrix(&mut triples, &rank, corners.len(), genes.len());
    let names = corners
        .iter()
        .map(|((x, y), _)| format!("{x}_{y}"))
        .collect();
    let mut adata = new_anndata(path, names, genes, x);
    let mut spatial = Array2::<f64>::zeros((corners.len(), 2));
    for (i, ((x, y), _)) in corners.iter().enumerate() {
        spatial[[i, 0]] = f64::from(*x);
        spatial[[i, 1]] = f64::from(*y);
    }
    adata.obsm.insert("spatial".into(), spatial);
    adata.spatial_units = Some("DNB".into());
    metadata.push(("bin_size".into(), format!("{bin} DNB")));
    metadata.push(("spatial_units".into(), "DNB (500 nm)".into()));
    let info = VendorInfo {
        platform: "BGI Stereo-seq".into(),
        files: vec![file_name(path)],
        metadata,
        controls: Vec::new(),
        images: Vec::new(),
    };
    Ok((adata, info))
}

/// `(spot, gene, count)` triples (spots renumbered by `rank`) summed into CSR, genes sorted
/// within each spot.
fn binned_matrix(
    triples: &mut [(u32, u32, f32)],
    rank: &[u32],
    spots: usize,
    genes: usize,
) -> CsrMatrix {
    for t in triples.iter_mut() {
        t.0 = rank[t.0 as usize];
    }
    triples.sort_unstable_by_key(|t| (t.0, t.1));
    let (mut indptr, mut indices, mut data) =
        (vec![0u64; spots + 1], Vec::new(), Vec::<f32>::new());
    let mut last: Option<(u32, u32)> = None;
    for &(s, g, n) in triples.iter() {
        if last == Some((s, g)) {
            if let Some(v) = data.last_mut() {
                *v += n;
            }
        } else {
            indices.push(g);
            data.push(n);
            indptr[s as usize + 1] += 1;
            last = Some((s, g));
        }
    }
    for i in 0..spots {
        indptr[i + 1] += indptr[i];
    }
    CsrMatrix {
        n_rows: spots,
        n_cols: genes,
        indptr,
        indices,
        data,
    }
}
