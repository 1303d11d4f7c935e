//! Writing a NEW `.h5ad` in the current AnnData on-disk specification (anndata >= 0.8:
//! `encoding-type` / `encoding-version` on every element), with cellscope's results added.
//!
//! The input file is never opened for writing: output goes to a temporary file in the target
//! folder that is renamed over the target only once complete, and the input path is refused as
//! a target. When the source is an `.h5ad` in the current specification, elements cellscope does
//! not model (`X` as stored, `layers`, `raw`, `uns`, `obsp`, `varm`, `varp`) are copied from it
//! unchanged with `H5Ocopy`.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, Location};
use ndarray::Array2;

use super::anndata::AnnData;
use super::dataframe::{Column, DataFrame};
use super::error::{DataError, Result};
use super::h5util::{attr_string, to_varlen, write_str_array_attr, write_str_attr};
use super::matrix::Matrix;

/// What cellscope adds to a dataset when writing it back.
#[derive(Debug, Clone, Default)]
pub struct Additions {
    /// obsm arrays, each `(n_obs, k)` (e.g. `X_cellscope`, `X_umap`); replace same-named ones.
    pub obsm: Vec<(String, Array2<f32>)>,
    /// obs columns (categorical predictions and clusters, float confidences); replace same-named.
    pub obs: Vec<(String, Column)>,
    /// Scalar string entries of uns (e.g. JSON provenance, the gene coverage report).
    pub uns: Vec<(String, String)>,
    /// The tissue image for squidpy and scanpy's spatial plots (`uns['spatial']`); replaces
    /// what the source had there.
    pub spatial: Option<SpatialImages>,
    /// Dense layers, each `(n_obs, n_vars)` (e.g. `measured` beside predicted `X`); replace
    /// same-named ones.
    pub layers: Vec<(String, Array2<f32>)>,
}

/// `uns['spatial'][library_id]` as scanpy's `read_visium` writes it and squidpy reads it:
/// `images/<name>` (height x width x 3, uint8) and `scalefactors` (`tissue_<name>_scalef`:
/// image pixels per unit of `obsm['spatial']`; `spot_diameter_fullres` in those units).
#[derive(Debug, Clone)]
pub struct SpatialImages {
    /// The section's key (scanpy: the library id).
    pub library_id: String,
    /// Named images (`hires`, `lowres`).
    pub images: Vec<(String, image::RgbImage)>,
    /// Scale factors by name.
    pub scalefactors: Vec<(String, f64)>,
}

fn h5<T>(file: &Path, path: &str, r: hdf5::Result<T>) -> Result<T> {
    r.map_err(|e| DataError::hdf5(file, path, e))
}

fn set_encoding(loc: &Location, kind: &str, version: &str) -> hdf5::Result<()> {
    write_str_attr(loc, "encoding-type", kind)?;
    write_str_attr(loc, "encoding-version", version)
}

fn write_string_array(g: &Group, name: &str, values: &[String]) -> hdf5::Result<()> {
    let v = to_varlen(values)?;
    let ds = g
        .new_dataset::<VarLenUnicode>()
        .shape(v.len())
        .create(name)?;
    ds.write_raw(&v)?;
    set_encoding(&ds, "string-array", "0.2.0")
}

fn write_array<T: hdf5::H5Type>(g: &Group, name: &str, values: &[T]) -> hdf5::Result<()> {
    let ds = g.new_dataset::<T>().shape(values.len()).create(name)?;
    ds.write_raw(values)?;
    set_encoding(&ds, "array", "0.2.0")
}

fn write_column(g: &Group, name: &str, col: &Column) -> hdf5::Result<()> {
    match col {
        Column::Categorical {
            codes,
            categories,
            ordered,
        } => {
            let c = g.create_group(name)?;
            set_encoding(&c, "categorical", "0.2.0")?;
            c.new_attr::<bool>()
                .shape(())
                .create("ordered")?
                .write_scalar(ordered)?;
            write_string_array(&c, "categories", categories)?;
            if categories.len() < 128 {
                let v: Vec<i8> = codes.iter().map(|&x| x as i8).collect();
                write_array(&c, "codes", &v)
            } else {
                write_array(&c, "codes", codes)
            }
        }
        Column::Str(v) => write_string_array(g, name, v),
        Column::Float(v) => write_array(g, name, v),
        Column::Int(v) => write_array(g, name, v),
        Column::Bool(v) => write_array(g, name, v),
        Column::NullableInt(v) => {
            let c = g.create_group(name)?;
            set_encoding(&c, "nullable-integer", "0.1.0")?;
            let values: Vec<i64> = v.iter().map(|x| x.unwrap_or(0)).collect();
            let mask: Vec<bool> = v.iter().map(Option::is_none).collect();
            write_array(&c, "values", &values)?;
            write_array(&c, "mask", &mask)
        }
        Column::NullableBool(v) => {
            let c = g.create_group(name)?;
            set_encoding(&c, "nullable-boolean", "0.1.0")?;
            let values: Vec<bool> = v.iter().map(|x| x.unwrap_or(false)).collect();
            let mask: Vec<bool> = v.iter().map(Option::is_none).collect();
            write_array(&c, "values", &values)?;
            write_array(&c, "mask", &mask)
        }
    }
}

fn write_dataframe(
    root: &Group,
    name: &str,
    df: &DataFrame,
    extra: &[(String, Column)],
) -> hdf5::Result<()> {
    let g = root.create_group(name)?;
    set_encoding(&g, "dataframe", "0.2.0")?;
    write_str_attr(&g, "_index", "_index")?;
    write_string_array(&g, "_index", &df.index)?;
    let mut order: Vec<String> = Vec::new();
    let replaced = |n: &str| extra.iter().any(|(e, _)| e == n);
    for (n, c) in df
        .columns
        .iter()
        .filter(|(n, _)| !replaced(n))
        .chain(extra.iter())
    {
        write_column(&g, n, c)?;
        order.push(n.clone());
    }
    if order.is_empty() {
        // anndata writes an empty column-order as an empty float64 array.
        g.new_attr::<f64>().shape(0).create("column-order")?;
        Ok(())
    } else {
        write_str_array_attr(&g, "column-order", &order)
    }
}

fn write_matrix(root: &Group, name: &str, x: &Matrix) -> hdf5::Result<()> {
    match x {
        Matrix::Dense(a) => {
            let ds = root.new_dataset::<f32>().shape(a.dim()).create(name)?;
            ds.write(a)?;
            set_encoding(&ds, "array", "0.2.0")
        }
        Matrix::Csr(m) => {
            let g = root.create_group(name)?;
            set_encoding(&g, "csr_matrix", "0.1.0")?;
            g.new_attr::<i64>()
                .shape(2)
                .create("shape")?
                .write_raw(&[m.n_rows as i64, m.n_cols as i64])?;
            let ds = g.new_dataset::<f32>().shape(m.data.len()).create("data")?;
            ds.write_raw(&m.data)?;
            let idx: Vec<i32> = m.indices.iter().map(|&i| i as i32).collect();
            let ds = g.new_dataset::<i32>().shape(idx.len()).create("indices")?;
            ds.write_raw(&idx)?;
            let ptr: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
            let ds = g.new_dataset::<i64>().shape(ptr.len()).create("indptr")?;
            ds.write_raw(&ptr)
        }
    }
}

/// Copies the member `name` of `src` (group or dataset, with its attributes) to `dst/name`.
fn copy_member(src: &File, name: &str, dst: &Group) -> hdf5::Result<()> {
    match src.loc_type_by_name(name)? {
        hdf5::LocationType::Group => src.group(name)?.copy_to(dst, name),
        _ => src.dataset(name)?.copy_to(dst, name),
    }
}

fn dict_group(root: &Group, name: &str) -> hdf5::Result<Group> {
    let g = root.create_group(name)?;
    set_encoding(&g, "dict", "0.1.0")?;
    Ok(g)
}

/// Writes `uns['spatial'][library_id]` (see [`SpatialImages`]) under `uns`.
fn write_spatial(uns: &Group, s: &SpatialImages) -> hdf5::Result<()> {
    let lib = dict_group(&dict_group(uns, "spatial")?, &s.library_id)?;
    let images = dict_group(&lib, "images")?;
    for (name, img) in &s.images {
        let (w, h) = img.dimensions();
        let ds = images
            .new_dataset::<u8>()
            .shape([h as usize, w as usize, 3])
            .create(name.as_str())?;
        ds.write_raw(img.as_raw())?;
        set_encoding(&ds, "array", "0.2.0")?;
    }
    let sf = dict_group(&lib, "scalefactors")?;
    for (k, v) in &s.scalefactors {
        let ds = sf.new_dataset::<f64>().shape(()).create(k.as_str())?;
        ds.write_scalar(v)?;
        set_encoding(&ds, "numeric-scalar", "0.2.0")?;
    }
    Ok(())
}

/// True when the file at `path` is an `.h5ad` in the current specification (root `obs` is a group
/// with `encoding-type`), i.e. its elements can be copied as they are.
fn current_spec_source(path: &Path) -> Option<File> {
    let f = super::h5util::open_read(path).ok()?;
    let obs = f.group("obs").ok()?;
    attr_string(&obs, "encoding-type").is_some().then_some(f)
}

/// Whether [`write_h5ad`] can copy `X` straight from the file at `path` (a current-spec h5ad),
/// so that a metadata-only read of it is enough; legacy files must be read fully.
pub fn copies_x_from(path: &Path) -> bool {
    current_spec_source(path).is_some_and(|f| f.link_exists("X"))
}

/// Refuses `out` when it names the same file as `input`, or lies inside `input` when that is
/// a folder (a Visium folder's images are inputs too).
///
/// # Errors
/// [`DataError::WouldOverwriteInput`].
pub fn check_not_input(input: &Path, out: &Path) -> Result<()> {
    // The output may not exist yet: compare its folder, resolved, joined with its name.
    let resolved = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty())?;
            Some(dir.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    let same = match (input.canonicalize(), resolved(out)) {
        // An input folder (Visium, an instrument's output) holds inputs too: nothing is
        // written inside it.
        (Ok(a), Some(b)) => a == b || (a.is_dir() && b.starts_with(&a)),
        _ => input == out,
    };
    if same {
        return Err(DataError::WouldOverwriteInput {
            file: out.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes `adata` plus `additions` to a new `.h5ad` at `out`, atomically (temporary file in the
/// same folder, then rename).
///
/// # Errors
/// [`DataError::WouldOverwriteInput`] when `out` is `adata.source`; a wrong-length addition
/// ([`DataError::Invalid`]); I/O and HDF5 errors naming `out`.
pub fn write_h5ad(adata: &AnnData, additions: &Additions, out: &Path) -> Result<()> {
    check_not_input(&adata.source, out)?;
    let n_obs = adata.n_obs();
    for (k, a) in &additions.obsm {
        if a.nrows() != n_obs {
            return Err(DataError::invalid(
                out,
                &format!("obsm/{k}"),
                format!("has {} rows, expected n_obs = {n_obs}", a.nrows()),
            ));
        }
    }
    for (k, a) in &additions.layers {
        if a.dim() != (n_obs, adata.n_vars()) {
            return Err(DataError::invalid(
                out,
                &format!("layers/{k}"),
                format!(
                    "has shape {:?}, expected (n_obs, n_vars) = ({n_obs}, {})",
                    a.dim(),
                    adata.n_vars()
                ),
            ));
        }
    }
    for (k, c) in &additions.obs {
        if c.len() != n_obs {
            return Err(DataError::invalid(
                out,
                &format!("obs/{k}"),
                format!("has {} rows, expected n_obs = {n_obs}", c.len()),
            ));
        }
    }
    let tmp = super::part::file(out, ".h5ad.part").map_err(|e| DataError::io(out, e))?;
    let tmp_path = tmp.path().to_path_buf();
    {
        let f = h5(out, "/", super::h5util::create_unlocked(&tmp_path))?;
        write_contents(&f, adata, additions, out)?;
        h5(out, "/", f.close())?;
    }
    super::part::persist(tmp, out).map_err(|e| DataError::io(out, e))?;
    Ok(())
}

fn write_contents(f: &File, adata: &AnnData, additions: &Additions, out: &Path) -> Result<()> {
    let root: &Group = f;
    h5(out, "/", set_encoding(root, "anndata", "0.1.0"))?;
    let source = current_spec_source(&adata.source);

    // X: copied as stored when the source is a current-spec h5ad (exact dtype and values).
    let x_copied = match &source {
        Some(src) if src.link_exists("X") => {
            h5(out, "X", copy_member(src, "X", root))?;
            true
        }
        _ => false,
    };
    if !x_copied {
        if !adata.x_loaded {
            return Err(DataError::invalid(
                &adata.source,
                "X",
                "X was not loaded and cannot be copied from this (legacy) file; read it fully",
            ));
        }
        h5(out, "X", write_matrix(root, "X", &adata.x))?;
    }
    h5(
        out,
        "obs",
        write_dataframe(root, "obs", &adata.obs, &additions.obs),
    )?;
    h5(out, "var", write_dataframe(root, "var", &adata.var, &[]))?;

    let obsm = h5(out, "obsm", dict_group(root, "obsm"))?;
    for (k, a) in &adata.obsm {
        if additions.obsm.iter().any(|(n, _)| n == k) {
            continue;
        }
        let path = format!("obsm/{k}");
        let ds = h5(
            out,
            &path,
            obsm.new_dataset::<f64>().shape(a.dim()).create(k.as_str()),
        )?;
        h5(out, &path, ds.write(a))?;
        h5(out, &path, set_encoding(&ds, "array", "0.2.0"))?;
    }
    for (k, a) in &additions.obsm {
        let path = format!("obsm/{k}");
        let ds = h5(
            out,
            &path,
            obsm.new_dataset::<f32>().shape(a.dim()).create(k.as_str()),
        )?;
        h5(out, &path, ds.write(a))?;
        h5(out, &path, set_encoding(&ds, "array", "0.2.0"))?;
    }

    // Elements not modelled: copied from a current-spec source, else empty dicts.
    for name in ["layers", "obsp", "varm", "varp", "raw"] {
        match &source {
            Some(src) if src.link_exists(name) => {
                h5(out, name, copy_member(src, name, root))?;
            }
            _ if name != "raw" => {
                h5(out, name, dict_group(root, name))?;
            }
            _ => {}
        }
    }
    if !additions.layers.is_empty() {
        let layers = h5(out, "layers", root.group("layers"))?;
        for (k, a) in &additions.layers {
            let path = format!("layers/{k}");
            if layers.link_exists(k) {
                h5(out, &path, layers.unlink(k))?;
            }
            let ds = h5(
                out,
                &path,
                layers
                    .new_dataset::<f32>()
                    .shape(a.dim())
                    .create(k.as_str()),
            )?;
            h5(out, &path, ds.write(a))?;
            h5(out, &path, set_encoding(&ds, "array", "0.2.0"))?;
        }
    }
    let uns = match &source {
        Some(src) if src.link_exists("uns") => {
            h5(out, "uns", copy_member(src, "uns", root))?;
            h5(out, "uns", root.group("uns"))?
        }
        _ => {
            let g = h5(out, "uns", dict_group(root, "uns"))?;
            for (k, colors) in &adata.uns_colors {
                let name = format!("{k}_colors");
                h5(
                    out,
                    &format!("uns/{name}"),
                    write_string_array(&g, &name, colors),
                )?;
            }
            g
        }
    };
    if let Some(s) = &additions.spatial {
        if uns.link_exists("spatial") {
            h5(out, "uns/spatial", uns.unlink("spatial"))?;
        }
        h5(out, "uns/spatial", write_spatial(&uns, s))?;
    }
    for (k, v) in &additions.uns {
        let path = format!("uns/{k}");
        if uns.link_exists(k) {
            h5(out, &path, uns.unlink(k))?;
        }
        let s: VarLenUnicode = v
            .parse()
            .map_err(|e| DataError::invalid(out, &path, format!("{e:?}")))?;
        let ds = h5(
            out,
            &path,
            uns.new_dataset::<VarLenUnicode>()
                .shape(())
                .create(k.as_str()),
        )?;
        h5(out, &path, ds.write_scalar(&s))?;
        h5(out, &path, set_encoding(&ds, "string", "0.2.0"))?;
    }
    Ok(())
}
