//! The answer of an inference request: the outputs in JSON `data`, or as
//! bytes after the JSON (`binary_data_size`), in the datatype each output
//! is answered in.

use score_engine::Model;
use score_protocol::codec;
use score_protocol::models::OutputDoc;

use super::tensor::Datatype;
use crate::error::ApiError;

/// One output of the answer.
pub struct Answered<'m> {
    /// What the model says of it.
    pub output: &'m OutputDoc,
    /// The workers' float32 values.
    pub data: Vec<u8>,
    /// Whether it goes as bytes after the JSON.
    pub binary: bool,
}

/// The answer's JSON header (or whole JSON) and the bytes after it.
pub fn answer(
    model: &Model,
    id: Option<&str>,
    rows: usize,
    outputs: Vec<Answered<'_>>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), ApiError> {
    let mut json = Vec::with_capacity(256);
    json.extend_from_slice(b"{\"model_name\":");
    serde_json::to_writer(&mut json, &model.name).map_err(internal)?;
    json.extend_from_slice(b",\"model_version\":");
    serde_json::to_writer(&mut json, &model.version).map_err(internal)?;
    if let Some(id) = id {
        json.extend_from_slice(b",\"id\":");
        serde_json::to_writer(&mut json, id).map_err(internal)?;
    }
    json.extend_from_slice(b",\"outputs\":[");
    let mut binary = Vec::new();
    for (i, out) in outputs.into_iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        let datatype = Datatype::of_output(out.output);
        let shape: Vec<usize> =
            if out.output.shape.len() <= 1 { vec![rows] } else { vec![rows, out.output.columns] };
        json.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut json, &out.output.name).map_err(internal)?;
        json.extend_from_slice(b",\"datatype\":\"");
        json.extend_from_slice(datatype.name().as_bytes());
        json.extend_from_slice(b"\",\"shape\":");
        serde_json::to_writer(&mut json, &shape).map_err(internal)?;
        let floats = || codec::decode(&out.data).map_err(|e| ApiError::Internal(e.to_string()));
        if out.binary {
            let bytes = match datatype {
                Datatype::Fp32 => out.data,
                Datatype::Int64 => {
                    floats()?.iter().flat_map(|&f| (f as i64).to_le_bytes()).collect()
                }
                Datatype::Bool => floats()?.iter().map(|&f| u8::from(f != 0.0)).collect(),
                _ => {
                    let mut bytes = Vec::new();
                    for name in class_names(out.output, &floats()?)? {
                        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
                        bytes.extend_from_slice(name.as_bytes());
                    }
                    bytes
                }
            };
            json.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            json.extend_from_slice(bytes.len().to_string().as_bytes());
            json.extend_from_slice(b"}}");
            binary.push(bytes);
        } else {
            json.extend_from_slice(b",\"data\":");
            let values = floats()?;
            match datatype {
                Datatype::Fp32 => super::super::json_rows::floats(&mut json, &values),
                Datatype::Int64 => {
                    let ints: Vec<i64> = values.iter().map(|&f| f as i64).collect();
                    serde_json::to_writer(&mut json, &ints).map_err(internal)?;
                }
                Datatype::Bool => {
                    let bools: Vec<bool> = values.iter().map(|&f| f != 0.0).collect();
                    serde_json::to_writer(&mut json, &bools).map_err(internal)?;
                }
                _ => {
                    let names = class_names(out.output, &values)?;
                    serde_json::to_writer(&mut json, &names).map_err(internal)?;
                }
            }
            json.push(b'}');
        }
    }
    json.extend_from_slice(b"]}");
    Ok((json, binary))
}

/// The class names a label output's indices stand for.
fn class_names<'o>(output: &'o OutputDoc, indices: &[f32]) -> Result<Vec<&'o str>, ApiError> {
    let classes = output.classes.as_deref().unwrap_or_default();
    indices
        .iter()
        .map(|&f| {
            let name = (f >= 0.0 && f.fract() == 0.0).then(|| classes.get(f as usize)).flatten();
            name.map(String::as_str).ok_or_else(|| {
                ApiError::Internal(format!(
                    "output {}: class index {f} outside its {} classes",
                    output.name,
                    classes.len()
                ))
            })
        })
        .collect()
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(e.to_string())
}
