//! The rules that find a row's features among a table's columns, whoever
//! holds the table: an Arrow schema in the client, the CLI and the Python
//! binding, a Spark schema in the JVM binding. Each side says what its
//! columns hold ([`ColumnKind`]); the choice, and the sentence when there
//! is none, is made here once.
//!
//! - Columns named by the caller: one list column (its items numbers), one
//!   string column where the caller takes texts (an embedding model), or
//!   numeric columns in the model's order.
//! - Nothing named: the only list column; with no list column, every
//!   float column. Several list columns are ambiguous: name one.
//!
//! ```
//! use score_protocol::features::{Column, ColumnKind, FeatureColumns, find_features};
//!
//! let columns = [
//!     Column { name: "id", kind: ColumnKind::Number, type_name: "bigint" },
//!     Column { name: "features", kind: ColumnKind::NumberList, type_name: "array<float>" },
//! ];
//! assert_eq!(find_features(&columns, None, false), Ok(FeatureColumns::List(1)));
//! ```

use std::fmt;

/// What a column holds, as far as finding features goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// float32 or float64: taken when nothing is named.
    Float,
    /// Another number (an integer, a decimal): taken only when named.
    Number,
    /// A list (or vector) of numbers.
    NumberList,
    /// A list of something else.
    OtherList,
    /// A string.
    Text,
    /// Anything else.
    Other,
}

/// One column of the table: its name, kind, and type as the caller's
/// schema writes it (for sentences).
#[derive(Clone, Copy, Debug)]
pub struct Column<'a> {
    /// The column's name.
    pub name: &'a str,
    /// What it holds.
    pub kind: ColumnKind,
    /// Its type in the caller's words (`array<string>`, `List(Utf8)`).
    pub type_name: &'a str,
}

/// Where a row's features are (indices into the columns given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureColumns {
    /// One list column holding each row's features.
    List(usize),
    /// One numeric column per feature, in the model's order.
    Columns(Vec<usize>),
    /// One string column: each row's text.
    Text(usize),
}

/// Why no features could be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureRuleError {
    /// A named column is not in the table.
    NoColumn(String),
    /// Nothing was named and no column looks like features.
    NoFeatures,
    /// Nothing was named and several list columns could be the features.
    Ambiguous {
        /// The list columns' names.
        lists: Vec<String>,
    },
    /// A feature column (or a list's items) does not hold numbers.
    NotNumeric {
        /// The column's name.
        column: String,
        /// Its type, in the caller's words.
        found: String,
    },
}

impl fmt::Display for FeatureRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureRuleError::NoColumn(name) => write!(f, "no column named {name:?}"),
            FeatureRuleError::NoFeatures => f.write_str("no feature columns found; name them"),
            FeatureRuleError::Ambiguous { lists } => write!(
                f,
                "{} list columns ({}) could be the features; name the one to score",
                lists.len(),
                lists.join(", ")
            ),
            FeatureRuleError::NotNumeric { column, found } => write!(
                f,
                "column {column:?} is {found}, not a number (name one list column, or numeric \
                 columns)"
            ),
        }
    }
}

impl std::error::Error for FeatureRuleError {}

/// Finds the features among `columns`: those `names` names (none or
/// empty: the rules of the module), a single string column among them
/// taken as texts when `texts` is set.
pub fn find_features(
    columns: &[Column<'_>],
    names: Option<&[String]>,
    texts: bool,
) -> Result<FeatureColumns, FeatureRuleError> {
    let not_numeric = |c: &Column<'_>| FeatureRuleError::NotNumeric {
        column: c.name.to_string(),
        found: c.type_name.to_string(),
    };
    let is_list = |c: &Column<'_>| matches!(c.kind, ColumnKind::NumberList | ColumnKind::OtherList);
    let chosen: Vec<usize> = match names.filter(|n| !n.is_empty()) {
        Some(names) => names
            .iter()
            .map(|n| {
                columns
                    .iter()
                    .position(|c| c.name == n)
                    .ok_or_else(|| FeatureRuleError::NoColumn(n.clone()))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let lists: Vec<usize> = (0..columns.len()).filter(|&i| is_list(&columns[i])).collect();
            match lists.len() {
                1 => lists,
                0 => (0..columns.len()).filter(|&i| columns[i].kind == ColumnKind::Float).collect(),
                _ => {
                    return Err(FeatureRuleError::Ambiguous {
                        lists: lists.iter().map(|&i| columns[i].name.to_string()).collect(),
                    });
                }
            }
        }
    };
    match chosen[..] {
        [] => Err(FeatureRuleError::NoFeatures),
        [one] => match columns[one].kind {
            ColumnKind::NumberList => Ok(FeatureColumns::List(one)),
            ColumnKind::Text if texts => Ok(FeatureColumns::Text(one)),
            ColumnKind::Float | ColumnKind::Number => Ok(FeatureColumns::Columns(chosen)),
            _ => Err(not_numeric(&columns[one])),
        },
        _ => match chosen
            .iter()
            .find(|&&i| !matches!(columns[i].kind, ColumnKind::Float | ColumnKind::Number))
        {
            Some(&bad) => Err(not_numeric(&columns[bad])),
            None => Ok(FeatureColumns::Columns(chosen)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnKind::*;

    fn table(kinds: &[(&'static str, ColumnKind)]) -> Vec<Column<'static>> {
        kinds.iter().map(|&(name, kind)| Column { name, kind, type_name: "T" }).collect()
    }

    fn named(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unnamed_features_are_the_only_list_else_every_float() {
        let t = table(&[("id", Number), ("v", NumberList), ("x", Float)]);
        assert_eq!(find_features(&t, None, false), Ok(FeatureColumns::List(1)));
        let t = table(&[("id", Number), ("a", Float), ("s", Text), ("b", Float)]);
        assert_eq!(find_features(&t, None, false), Ok(FeatureColumns::Columns(vec![1, 3])));
        assert_eq!(find_features(&t, Some(&[]), false), Ok(FeatureColumns::Columns(vec![1, 3])));
        let t = table(&[("id", Number), ("s", Text)]);
        assert_eq!(find_features(&t, None, false), Err(FeatureRuleError::NoFeatures));
        let t = table(&[("v", NumberList), ("w", OtherList), ("x", Float)]);
        let e = find_features(&t, None, false).expect_err("ambiguous");
        assert_eq!(
            e.to_string(),
            "2 list columns (v, w) could be the features; name the one to score"
        );
        let t = table(&[("w", OtherList)]);
        assert!(matches!(find_features(&t, None, false), Err(FeatureRuleError::NotNumeric { .. })));
    }

    #[test]
    fn named_features_are_a_list_a_text_or_numbers_in_order() {
        let t =
            table(&[("id", Number), ("v", NumberList), ("t", Text), ("a", Float), ("n", Number)]);
        assert_eq!(find_features(&t, Some(&named(&["v"])), false), Ok(FeatureColumns::List(1)));
        assert_eq!(find_features(&t, Some(&named(&["t"])), true), Ok(FeatureColumns::Text(2)));
        assert!(matches!(
            find_features(&t, Some(&named(&["t"])), false),
            Err(FeatureRuleError::NotNumeric { .. })
        ));
        assert_eq!(
            find_features(&t, Some(&named(&["n", "a", "id"])), false),
            Ok(FeatureColumns::Columns(vec![4, 3, 0]))
        );
        assert_eq!(
            find_features(&t, Some(&named(&["a", "v"])), false),
            Err(FeatureRuleError::NotNumeric { column: "v".into(), found: "T".into() })
        );
        assert_eq!(
            find_features(&t, Some(&named(&["a", "nope"])), false),
            Err(FeatureRuleError::NoColumn("nope".into()))
        );
    }
}
