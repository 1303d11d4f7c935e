//! `obs` / `var` data frames: an index of names and typed columns, as AnnData stores them.

/// One column of an `obs` or `var` data frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// pandas `Categorical`: `codes[i]` indexes `categories`, `-1` is missing (NaN).
    Categorical {
        /// Per-row category code, `-1` for missing.
        codes: Vec<i32>,
        /// Category names in order.
        categories: Vec<String>,
        /// Whether the categories are ordered.
        ordered: bool,
    },
    /// Strings (`string-array`, object dtype).
    Str(Vec<String>),
    /// Floats (any float dtype, widened).
    Float(Vec<f64>),
    /// Integers (any integer dtype, widened).
    Int(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// pandas nullable integer (`Int64`): `None` is missing.
    NullableInt(Vec<Option<i64>>),
    /// pandas nullable boolean (`boolean`): `None` is missing.
    NullableBool(Vec<Option<bool>>),
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Categorical { codes, .. } => codes.len(),
            Self::Str(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::NullableInt(v) => v.len(),
            Self::NullableBool(v) => v.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Short name of the kind, as `inspect` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Categorical { .. } => "categorical",
            Self::Str(_) => "string",
            Self::Float(_) => "float",
            Self::Int(_) => "int",
            Self::Bool(_) => "bool",
            Self::NullableInt(_) => "nullable-int",
            Self::NullableBool(_) => "nullable-bool",
        }
    }

    /// Value of row `i` as display text (`"nan"` for missing), as pandas would print it.
    pub fn value_string(&self, i: usize) -> String {
        match self {
            Self::Categorical {
                codes, categories, ..
            } => match usize::try_from(codes[i])
                .ok()
                .and_then(|c| categories.get(c))
            {
                Some(s) => s.clone(),
                None => "nan".into(),
            },
            Self::Str(v) => v[i].clone(),
            Self::Float(v) => format!("{}", v[i]),
            Self::Int(v) => v[i].to_string(),
            Self::Bool(v) => v[i].to_string(),
            Self::NullableInt(v) => v[i].map_or("nan".into(), |x| x.to_string()),
            Self::NullableBool(v) => v[i].map_or("nan".into(), |x| x.to_string()),
        }
    }

    /// Numeric value of row `i` (`NaN` for missing or non-numeric).
    pub fn value_f64(&self, i: usize) -> f64 {
        match self {
            Self::Float(v) => v[i],
            Self::Int(v) => v[i] as f64,
            Self::Bool(v) => f64::from(u8::from(v[i])),
            Self::NullableInt(v) => v[i].map_or(f64::NAN, |x| x as f64),
            Self::NullableBool(v) => v[i].map_or(f64::NAN, |x| f64::from(u8::from(x))),
            Self::Categorical { .. } | Self::Str(_) => f64::NAN,
        }
    }

    /// True for float/int/bool columns (usable as continuous values or coordinates).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Self::Float(_) | Self::Int(_) | Self::Bool(_) | Self::NullableInt(_)
        )
    }

    /// Builds a categorical column from labels; categories sorted as pandas sorts strings.
    pub fn categorical_from_labels<S: AsRef<str>>(labels: &[S]) -> Self {
        let mut categories: Vec<String> = labels.iter().map(|s| s.as_ref().to_string()).collect();
        categories.sort();
        categories.dedup();
        let codes = labels
            .iter()
            .map(|s| {
                categories
                    .binary_search_by(|c| c.as_str().cmp(s.as_ref()))
                    .map_or(-1, |k| k as i32)
            })
            .collect();
        Self::Categorical {
            codes,
            categories,
            ordered: false,
        }
    }

    /// Counts per category (`(category, count)` in category order) for a categorical column;
    /// missing values are not counted. `None` for other kinds.
    pub fn category_counts(&self) -> Option<Vec<(String, usize)>> {
        let Self::Categorical {
            codes, categories, ..
        } = self
        else {
            return None;
        };
        let mut counts = vec![0usize; categories.len()];
        for &c in codes {
            if let Some(n) = usize::try_from(c).ok().and_then(|c| counts.get_mut(c)) {
                *n += 1;
            }
        }
        Some(categories.iter().cloned().zip(counts).collect())
    }
}

/// A data frame: row names (`obs_names` / `var_names`) and named columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFrame {
    /// Row names.
    pub index: Vec<String>,
    /// Columns in `column-order`.
    pub columns: Vec<(String, Column)>,
}

impl DataFrame {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.index.len()
    }

    /// Column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Adds or replaces a column.
    ///
    /// # Panics
    /// If the column's length differs from the number of rows.
    pub fn set_column(&mut self, name: &str, col: Column) {
        assert_eq!(
            col.len(),
            self.n_rows(),
            "column {name} has the wrong length"
        );
        if let Some(slot) = self.columns.iter_mut().find(|(n, _)| n == name) {
            slot.1 = col;
        } else {
            self.columns.push((name.to_string(), col));
        }
    }

    /// Names of the columns.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
}
