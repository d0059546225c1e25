//! The control documents: `GET /models` ([`ModelList`]) and
//! `GET /models/{name}` ([`ModelDoc`]), and the JSON scoring answer
//! ([`JsonScores`]).

use serde::{Deserialize, Serialize};

/// One input of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDoc {
    /// ONNX input name: an Arrow body's column for it carries this name.
    pub name: String,
    /// Element type: `float32`, `float64`, `int64`, `int32`, `bool` or
    /// `string`.
    pub dtype: String,
    /// Symbolic shape, e.g. `["N", "100"]`.
    pub shape: Vec<String>,
    /// Values per row (n): for the float32 matrix input, the width of a
    /// request's rows.
    pub columns: usize,
    /// The columns an Arrow IPC body may carry for this input, one layout
    /// a line ([`InputDoc::arrow_layouts`]).
    #[serde(default)]
    pub arrow: Vec<String>,
    /// For the float32 matrix input of a model that names its features
    /// (ONNX metadata `feature_names`, see [`FEATURE_NAMES_KEY`]): the
    /// name of each of its `columns` values, in order. An Arrow body's
    /// separate float columns are then matched to them by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_names: Option<Vec<String>>,
}

/// The ONNX model metadata key (`metadata_props`) that names a float
/// matrix input's features: comma-separated (`age,income,visits`) or a
/// JSON array of strings.
pub const FEATURE_NAMES_KEY: &str = "feature_names";

impl InputDoc {
    /// A float32 input of `columns` features, as the server describes it,
    /// with the features' names where the model gives them.
    pub fn float32(
        name: String,
        shape: Vec<String>,
        columns: usize,
        feature_names: Option<Vec<String>>,
    ) -> InputDoc {
        InputDoc {
            name,
            dtype: "float32".into(),
            shape,
            columns,
            arrow: InputDoc::arrow_layouts(columns, feature_names.is_some()),
            feature_names,
        }
    }

    /// One input of a model with several (or of a type other than
    /// float32): the Arrow column it is fed from is named after it.
    pub fn typed(name: String, dtype: &str, shape: Vec<String>, columns: usize) -> InputDoc {
        let arrow = vec![InputDoc::typed_layout(&name, dtype, columns)];
        InputDoc { name, dtype: dtype.into(), shape, columns, arrow, feature_names: None }
    }

    /// The Arrow types that feed an input of element type `dtype`.
    pub fn arrow_types(dtype: &str) -> &'static str {
        match dtype {
            "float32" => "float32 or float64 (converted)",
            "float64" => "float64 or float32",
            "int64" => "int64, int32, int16 or int8",
            "int32" => "int32, int16 or int8",
            "bool" => "bool",
            "string" => "utf8, large_utf8 or dictionary<utf8>",
            _ => "(no Arrow type: the server cannot feed this input)",
        }
    }

    /// The Arrow column a typed input takes, in a sentence.
    pub fn typed_layout(name: &str, dtype: &str, columns: usize) -> String {
        let types = InputDoc::arrow_types(dtype);
        if columns == 1 {
            format!("a column named {name:?} of {types}")
        } else {
            format!(
                "a column named {name:?}: a list, large_list or fixed_size_list of {columns} \
                 {types} values a row"
            )
        }
    }

    /// The Arrow IPC layouts a float32 input of `columns` features takes:
    /// separate columns by name where the model names its features
    /// (`named`), else by position.
    pub fn arrow_layouts(columns: usize, named: bool) -> Vec<String> {
        let separate = if named {
            format!(
                "{columns} float32 or float64 columns named after the model's features \
                 (feature_names), in any order"
            )
        } else {
            format!(
                "{columns} float32 or float64 columns, in the model's feature order (names free)"
            )
        };
        vec![
            format!(
                "one list, large_list or fixed_size_list column of {columns} float32 or float64 values a row"
            ),
            separate,
        ]
    }

    /// Reads the value of the [`FEATURE_NAMES_KEY`] metadata entry: a JSON
    /// array of strings, or names separated by commas (spaces around them
    /// trimmed). `Err` says what is wrong with it: an empty or repeated
    /// name.
    pub fn parse_feature_names(value: &str) -> Result<Vec<String>, String> {
        let names: Vec<String> = if value.trim_start().starts_with('[') {
            serde_json::from_str(value).map_err(|e| {
                format!("it starts like a JSON array but is not one of strings: {e}")
            })?
        } else {
            value.split(',').map(|name| name.trim().to_string()).collect()
        };
        if let Some(ix) = names.iter().position(String::is_empty) {
            return Err(format!("name {} of {} is empty", ix + 1, names.len()));
        }
        for (ix, name) in names.iter().enumerate() {
            if names[..ix].contains(name) {
                return Err(format!("{name:?} is named twice"));
            }
        }
        Ok(names)
    }
}

/// One model output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDoc {
    /// ONNX output name, used with `?output=NAME`.
    pub name: String,
    /// Element type produced by the model (converted to float32 on the wire).
    pub dtype: String,
    /// Symbolic shape, e.g. `["N", "2"]`.
    pub shape: Vec<String>,
    /// Floats per row on the wire (product of the non-batch dimensions).
    pub columns: usize,
    /// For a classifier exported with string class labels: the label output
    /// carries the class index, and this lists the names by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// A model as `GET /models/{name}` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDoc {
    /// Serving name.
    pub name: String,
    /// Content hash: the `X-Model-Version` of its answers.
    pub version: String,
    /// Whether `/score` serves it.
    pub default: bool,
    /// Where it was loaded from.
    pub source: String,
    /// The first input: the float32 matrix of a model with one; kept for
    /// clients that know only such models.
    pub input: InputDoc,
    /// Every input, in the model's order. A model with several, or one of
    /// another type than a float32 matrix, takes Arrow IPC bodies with one
    /// column per input, by name. (Empty from servers older than typed
    /// inputs: `input` is then the only one.)
    #[serde(default)]
    pub inputs: Vec<InputDoc>,
    /// The outputs, in the model's order.
    pub outputs: Vec<OutputDoc>,
    /// The output served when `?output=` is absent.
    pub default_output: String,
    /// The scoring route.
    pub score_url: String,
    /// The engine that runs the model: `tract` or `onnxruntime` (absent
    /// from servers older than the engine choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Why that engine, in a sentence: the flag that asked for it, or what
    /// `--engine auto` measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_reason: Option<String>,
    /// When this version was loaded, RFC 3339 UTC (absent from servers
    /// older than hot reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
}

impl ModelDoc {
    /// Whether the model takes one float32 `[N, n]` matrix: the input the
    /// binary and JSON bodies carry.
    pub fn takes_matrix(&self) -> bool {
        self.inputs.len() <= 1 && self.input.dtype == "float32" && self.input.shape.len() == 2
    }

    /// The output a request with `?output=name` gets (`None`: the default).
    pub fn output(&self, name: Option<&str>) -> Option<&OutputDoc> {
        let wanted = name.unwrap_or(&self.default_output);
        self.outputs.iter().find(|o| o.name == wanted)
    }

    /// Scores per row of `output` (`None`: the default output), or the
    /// sentence saying the model has no such output.
    pub fn score_columns(&self, output: Option<&str>) -> Result<usize, String> {
        self.output(output).map(|o| o.columns).ok_or_else(|| {
            let wanted = output.unwrap_or(&self.default_output);
            let names: Vec<&str> = self.outputs.iter().map(|o| o.name.as_str()).collect();
            format!("model {:?} has no output {wanted:?} (it has {})", self.name, names.join(", "))
        })
    }
}

/// `GET /models`: every model, the default one marked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The models, the default first.
    pub models: Vec<ModelDoc>,
}

impl ModelList {
    /// The model `/score` serves.
    pub fn default_model(&self) -> Option<&ModelDoc> {
        self.models.iter().find(|m| m.default)
    }
}

/// The answer to a JSON scoring request.
#[derive(Debug, Serialize)]
pub struct JsonScores<'a> {
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub version: &'a str,
    /// Output served.
    pub output: &'a str,
    /// Rows scored.
    pub rows: usize,
    /// Floats per row.
    pub columns: usize,
    /// The scores, one array per row.
    pub outputs: Vec<&'a [f32]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_output_and_model_are_found() {
        let text = r#"{"models":[{"name":"demo","version":"ab","default":true,"source":"x",
            "input":{"name":"X","dtype":"float32","shape":["N","3"],"columns":3},
            "outputs":[{"name":"label","dtype":"int64","shape":["N"],"columns":1,
                        "classes":["a","b"]},
                       {"name":"p","dtype":"float32","shape":["N","2"],"columns":2}],
            "default_output":"p","score_url":"/models/demo/score"}]}"#;
        let list: ModelList = serde_json::from_str(text).expect("document");
        let demo = list.default_model().expect("default");
        assert_eq!(demo.input.columns, 3);
        assert_eq!(demo.output(None).map(|o| o.columns), Some(2));
        assert_eq!(
            demo.output(Some("label")).and_then(|o| o.classes.clone()).map(|c| c.len()),
            Some(2)
        );
        assert!(demo.output(Some("nope")).is_none());
        let again: ModelList =
            serde_json::from_str(&serde_json::to_string(&list).expect("ser")).expect("de");
        assert_eq!(again, list);
    }

    #[test]
    fn feature_names_are_read_from_either_spelling_and_checked() {
        let names = ["age", "income", "visits"];
        assert_eq!(InputDoc::parse_feature_names("age, income,visits").unwrap(), names);
        assert_eq!(InputDoc::parse_feature_names(r#"["age","income","visits"]"#).unwrap(), names);
        // A comma inside a name needs the JSON form.
        assert_eq!(InputDoc::parse_feature_names(r#"["a,b"]"#).unwrap(), ["a,b"]);
        let twice = InputDoc::parse_feature_names("age,income,age").unwrap_err();
        assert!(twice.contains("\"age\" is named twice"), "{twice}");
        let empty = InputDoc::parse_feature_names("age,,visits").unwrap_err();
        assert!(empty.contains("name 2 of 3 is empty"), "{empty}");
        let bad = InputDoc::parse_feature_names(r#"["age", 3]"#).unwrap_err();
        assert!(bad.contains("JSON array"), "{bad}");
    }
}
