//! Turns `docs/openapi.yaml` (the protocol's OpenAPI description, written
//! by hand) into the JSON that `GET /openapi.json` serves, at build time:
//! one source, checked to parse whenever the server builds.

use std::path::Path;

fn main() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let doc: serde_json::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", source.display()));
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.json");
    std::fs::write(&out, serde_json::to_string(&doc).expect("JSON"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
