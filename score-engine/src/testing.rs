//! Fixture models for tests and benches (the `testing` feature): never
//! compiled into the server.

use std::path::{Path, PathBuf};

use tract_onnx::pb;

/// The path of a fixture model in the repository's `models/` folder; used by
/// tests and benches.
pub fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file)
}

/// `linreg.onnx` (a fixture) with its intercept moved by `shift`: the same
/// inputs and outputs, other scores and so another version. For tests of
/// model reloads and version pinning.
pub fn linreg_shifted(shift: f32) -> Vec<u8> {
    use prost::Message;
    let bytes = std::fs::read(fixture_path("linreg.onnx")).expect("the linreg fixture");
    let mut proto = pb::ModelProto::decode(&bytes[..]).expect("the linreg fixture parses");
    let graph = proto.graph.as_mut().expect("a graph");
    let intercepts = graph
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .find(|a| a.name == "intercepts")
        .expect("linreg's LinearRegressor has intercepts");
    for v in &mut intercepts.floats {
        *v += shift;
    }
    proto.encode_to_vec()
}
