//! Data frames of an `.h5ad`: `obs`, `var` and `raw/var` (groups of the current spec and
//! anndata 0.7, pre-0.7 compound datasets), their columns (categorical, nullable, strings,
//! numbers) and index.

#[allow(clippy::wildcard_imports)]
use super::*;

impl H5adReader {
    /// Reads `obs`.
    ///
    /// # Errors
    /// Missing or malformed `obs` (index, a column's dtype or length, categorical codes).
    pub fn read_obs(&self) -> Result<DataFrame> {
        self.read_dataframe("obs")
    }

    /// Reads `var`.
    ///
    /// # Errors
    /// As [`Self::read_obs`].
    pub fn read_var(&self) -> Result<DataFrame> {
        self.read_dataframe("var")
    }

    /// Reads a data frame element (`obs`, `var`, `raw/var`, legacy `raw.var`).
    ///
    /// # Errors
    /// Missing element, malformed index or column.
    pub fn read_dataframe(&self, path: &str) -> Result<DataFrame> {
        match self.kind(path) {
            None => Err(DataError::missing(
                &self.path,
                path,
                "a data frame (group with _index, or legacy compound dataset)",
            )),
            Some(LocationType::Dataset) => self.read_compound_dataframe(path),
            Some(_) => self.read_group_dataframe(path),
        }
    }

    pub(super) fn read_group_dataframe(&self, path: &str) -> Result<DataFrame> {
        let g = self.group(path)?;
        self.check_spec(&g, path, &["dataframe"])?;
        let index_name = attr_string(&g, "_index").unwrap_or_else(|| "_index".to_string());
        let index_path = format!("{path}/{index_name}");
        let index_ds = self.dataset(&index_path)?;
        if index_ds.ndim() != 1 {
            return Err(DataError::invalid(
                &self.path,
                &index_path,
                format!("index must be 1-D, found {} dimensions", index_ds.ndim()),
            ));
        }
        let index = match index_ds.dtype().and_then(|t| t.to_descriptor()) {
            Ok(t) if is_string_type(&t) => {
                read_strings(&index_ds).map_err(self.h5err(&index_path))?
            }
            Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => index_ds
                .read_raw::<i64>()
                .map_err(self.h5err(&index_path))?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
            _ => {
                return Err(DataError::invalid(
                    &self.path,
                    &index_path,
                    "index must hold strings",
                ));
            }
        };
        let order = attr_strings(&g, "column-order").unwrap_or_else(|| {
            let mut names = g.member_names().unwrap_or_default();
            names.retain(|n| n != &index_name && n != "__categories");
            names
        });
        let mut df = DataFrame {
            index,
            columns: Vec::with_capacity(order.len()),
        };
        for name in order {
            let col_path = format!("{path}/{name}");
            let col = self.read_column(&g, path, &name)?;
            if col.len() != df.n_rows() {
                return Err(DataError::invalid(
                    &self.path,
                    &col_path,
                    format!(
                        "column has {} rows but the index has {}",
                        col.len(),
                        df.n_rows()
                    ),
                ));
            }
            df.columns.push((name, col));
        }
        Ok(df)
    }

    pub(super) fn read_column(
        &self,
        frame: &Group,
        frame_path: &str,
        name: &str,
    ) -> Result<Column> {
        let path = format!("{frame_path}/{name}");
        match member_kind(frame, name) {
            None => Err(DataError::missing(
                &self.path,
                &path,
                "a column listed in column-order",
            )),
            Some(LocationType::Group) => {
                let g = self.group(&path)?;
                let enc = attr_string(&g, "encoding-type").unwrap_or_default();
                match enc.as_str() {
                    "categorical" => {
                        self.check_spec(&g, &path, &["categorical"])?;
                        let codes = self.read_codes(&format!("{path}/codes"))?;
                        let categories = self.read_labels(&format!("{path}/categories"))?;
                        let ordered = attr_bool(&g, "ordered").unwrap_or(false);
                        let codes = self.checked_codes(&path, &codes, categories.len())?;
                        Ok(Column::Categorical {
                            codes,
                            categories,
                            ordered,
                        })
                    }
                    "nullable-integer" => {
                        let values = self
                            .dataset(&format!("{path}/values"))?
                            .read_raw::<i64>()
                            .map_err(self.h5err(&path))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::NullableInt(masked(values, mask)))
                    }
                    "nullable-boolean" => {
                        let values = self.read_bools(&format!("{path}/values"))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::NullableBool(masked(values, mask)))
                    }
                    "nullable-string-array" => {
                        let values = self.read_labels(&format!("{path}/values"))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::Str(
                            masked(values, mask)
                                .into_iter()
                                .map(|v| v.unwrap_or_else(|| "nan".to_string()))
                                .collect(),
                        ))
                    }
                    other => Err(DataError::invalid(
                        &self.path,
                        &path,
                        format!(
                            "unsupported column encoding-type {other:?} (expected categorical, \
                             nullable-integer, nullable-boolean, string-array or array)"
                        ),
                    )),
                }
            }
            Some(_) => {
                let ds = self.dataset(&path)?;
                if ds.ndim() != 1 {
                    return Err(DataError::invalid(
                        &self.path,
                        &path,
                        format!("column must be 1-D, found {} dimensions", ds.ndim()),
                    ));
                }
                // anndata 0.7: codes dataset + `__categories/<name>` (referenced by an attribute).
                let legacy_cats = format!("{frame_path}/__categories/{name}");
                if self.kind(&legacy_cats).is_some() {
                    let codes = self.read_codes(&path)?;
                    let categories = self.read_labels(&legacy_cats)?;
                    let codes = self.checked_codes(&path, &codes, categories.len())?;
                    let ordered = attr_bool(&ds, "ordered").unwrap_or(false);
                    return Ok(Column::Categorical {
                        codes,
                        categories,
                        ordered,
                    });
                }
                self.read_plain_column(&ds, &path)
            }
        }
    }

    pub(super) fn read_plain_column(&self, ds: &Dataset, path: &str) -> Result<Column> {
        let t = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.h5err(path))?;
        Ok(match t {
            t if is_string_type(&t) => Column::Str(read_strings(ds).map_err(self.h5err(path))?),
            TypeDescriptor::Float(_) => {
                Column::Float(ds.read_raw::<f64>().map_err(self.h5err(path))?)
            }
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                Column::Int(ds.read_raw::<i64>().map_err(self.h5err(path))?)
            }
            TypeDescriptor::Boolean | TypeDescriptor::Enum(_) => {
                Column::Bool(self.read_bools(path)?)
            }
            other => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    format!("unsupported column dtype {other:?}"),
                ));
            }
        })
    }

    pub(super) fn read_bools(&self, path: &str) -> Result<Vec<bool>> {
        let ds = self.dataset(path)?;
        match ds.read_raw::<bool>() {
            Ok(v) => Ok(v),
            Err(_) => Ok(ds
                .read_raw::<i8>()
                .map_err(self.h5err(path))?
                .into_iter()
                .map(|v| v != 0)
                .collect()),
        }
    }

    pub(super) fn read_mask(&self, path: &str, n: usize) -> Result<Vec<bool>> {
        let mask = self.read_bools(&format!("{path}/mask"))?;
        if mask.len() != n {
            return Err(DataError::invalid(
                &self.path,
                &format!("{path}/mask"),
                format!("mask has {} entries, values have {n}", mask.len()),
            ));
        }
        Ok(mask)
    }

    /// Categorical codes at full width (checked by [`Self::checked_codes`] before narrowing, so
    /// that a 64-bit code cannot wrap into range).
    pub(super) fn read_codes(&self, path: &str) -> Result<Vec<i64>> {
        let ds = self.dataset(path)?;
        match ds.dtype().and_then(|t| t.to_descriptor()) {
            Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => {}
            _ => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    "categorical codes must be integers",
                ));
            }
        }
        if ds.ndim() != 1 {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!(
                    "categorical codes must be 1-D, found {} dimensions",
                    ds.ndim()
                ),
            ));
        }
        ds.read_raw::<i64>().map_err(self.h5err(path))
    }

    /// Reads labels (category names): strings as they are, numbers printed as pandas prints them.
    pub(super) fn read_labels(&self, path: &str) -> Result<Vec<String>> {
        let ds = self.dataset(path)?;
        if ds.ndim() != 1 {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!("categories must be 1-D, found {} dimensions", ds.ndim()),
            ));
        }
        let t = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.h5err(path))?;
        Ok(match t {
            t if is_string_type(&t) => read_strings(&ds).map_err(self.h5err(path))?,
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => ds
                .read_raw::<i64>()
                .map_err(self.h5err(path))?
                .iter()
                .map(i64::to_string)
                .collect(),
            TypeDescriptor::Float(_) => ds
                .read_raw::<f64>()
                .map_err(self.h5err(path))?
                .iter()
                .map(f64::to_string)
                .collect(),
            TypeDescriptor::Boolean => ds
                .read_raw::<bool>()
                .map_err(self.h5err(path))?
                .iter()
                .map(|b| if *b { "True" } else { "False" }.to_string())
                .collect(),
            other => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    format!("unsupported category dtype {other:?}"),
                ));
            }
        })
    }

    /// The codes as pandas holds them (`i32`), once each is checked: `-1` (missing) or
    /// `0..n_categories`.
    pub(super) fn checked_codes(
        &self,
        path: &str,
        codes: &[i64],
        n_categories: usize,
    ) -> Result<Vec<i32>> {
        let ok = |c: i64| c == -1 || usize::try_from(c).is_ok_and(|c| c < n_categories);
        if let Some(bad) = codes.iter().find(|&&c| !ok(c)) {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!(
                    "categorical code {bad} is out of range: {n_categories} categories, codes \
                     must be -1 (missing) or 0..{n_categories}"
                ),
            ));
        }
        // In range, so each fits i32 (n_categories is a dataset length).
        Ok(codes.iter().map(|&c| c as i32).collect())
    }

    /// The pre-0.7 layout: a compound dataset whose `index` field holds the names; a field is
    /// categorical when `uns/<field>_categories` exists.
    pub(super) fn read_compound_dataframe(&self, path: &str) -> Result<DataFrame> {
        let ds = self.dataset(path)?;
        let fields = read_compound(&ds).map_err(self.h5err(path))?;
        let mut index = None;
        let mut columns = Vec::new();
        for (name, col) in fields {
            if name == "index" || name == "_index" {
                index = Some(match col {
                    CompoundColumn::Strings(v) => v,
                    CompoundColumn::Ints(v) => v.iter().map(i64::to_string).collect(),
                    _ => {
                        return Err(DataError::invalid(
                            &self.path,
                            &format!("{path}/index"),
                            "index field must hold strings",
                        ));
                    }
                });
                continue;
            }
            let cats_path = format!("uns/{name}_categories");
            let column = match col {
                CompoundColumn::Ints(codes) if path == "obs" || path == "var" => {
                    if self.kind(&cats_path).is_some() {
                        let categories = self.read_labels(&cats_path)?;
                        let codes = self.checked_codes(
                            &format!("{path}/{name}"),
                            &codes,
                            categories.len(),
                        )?;
                        Column::Categorical {
                            codes,
                            categories,
                            ordered: false,
                        }
                    } else {
                        Column::Int(codes)
                    }
                }
                CompoundColumn::Ints(v) => Column::Int(v),
                CompoundColumn::Strings(v) => Column::Str(v),
                CompoundColumn::Floats(v) => Column::Float(v),
                CompoundColumn::Bools(v) => Column::Bool(v),
                CompoundColumn::FloatRows(..) => continue,
            };
            columns.push((name, column));
        }
        let index = index.ok_or_else(|| {
            DataError::missing(
                &self.path,
                &format!("{path}/index"),
                "an index field of names",
            )
        })?;
        Ok(DataFrame { index, columns })
    }
}
