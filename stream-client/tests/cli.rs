//! The `score-client` binary: round trips through a real score-server, and
//! malformed inputs that must fail loudly with nothing left looking complete.

mod common;

use std::path::Path;
use std::process::Command;

use common::real_server;

fn write_f32(path: &Path, values: &[f32]) {
    std::fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
        .expect("write");
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn write_npy(path: &Path, rows: usize, columns: usize, values: &[f32]) {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let mut header = dict.into_bytes();
    // magic (6) + version (2) + length (2) + header, padded to 64 with '\n' last.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - 10 - 1, b' ');
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).expect("write");
}

fn client(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_score-client"))
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .expect("run score-client")
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("score-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

fn values(rows: usize, columns: usize) -> Vec<f32> {
    (0..rows * columns).map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0).collect()
}

/// The scores the server gives for `input` in one direct request.
fn direct(url: &str, input: &[f32]) -> Vec<f32> {
    let body: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = reqwest::blocking::Client::new()
        .put(format!("{url}/score"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .expect("direct")
        .bytes()
        .expect("body");
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn f32_and_npy_round_trips() {
    let server = real_server("logreg", &[]);
    let dir = tmpdir("round");
    let input = values(3_001, 100);
    let expected = direct(&server.url(), &input);

    // .f32 without --columns: the width comes from the server.
    write_f32(&dir.join("in.f32"), &input);
    let out = client(
        &server.url(),
        &[
            "--input",
            dir.join("in.f32").to_str().unwrap(),
            "--output",
            dir.join("out.f32").to_str().unwrap(),
            "--batch-rows",
            "500",
            "--set",
            "user_agent=cli-test",
            "--set",
            "max_attempts=3",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_f32(&dir.join("out.f32")), expected);

    // .npy in, .npy out.
    write_npy(&dir.join("in.npy"), 3_001, 100, &input);
    let out = client(
        &server.url(),
        &[
            "--input",
            dir.join("in.npy").to_str().unwrap(),
            "--output",
            dir.join("out.npy").to_str().unwrap(),
            "--in-flight",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reader =
        stream_client::files::RowReader::open(&dir.join("out.npy"), None, 1000).expect("valid npy");
    assert_eq!((reader.rows(), reader.columns()), (3_001, 2));
    let got: Vec<f32> = reader.flat_map(|b| b.expect("block").as_ref().to_vec()).collect();
    assert_eq!(got, expected);

    // The label output, by name.
    let out = client(
        &server.url(),
        &[
            "--input",
            dir.join("in.npy").to_str().unwrap(),
            "--output",
            dir.join("labels.f32").to_str().unwrap(),
            "--output-name",
            "label",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels = read_f32(&dir.join("labels.f32"));
    assert_eq!(labels.len(), 3_001);
    assert!(labels.iter().all(|l| *l == 0.0 || *l == 1.0));
    std::fs::remove_dir_all(dir).expect("clean");
}

#[test]
fn malformed_inputs_fail_and_leave_no_output() {
    let server = real_server("logreg", &[]);
    let dir = tmpdir("bad");
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        ("truncated.f32", vec![0u8; 401], vec!["--columns", "100"], "not a whole number of rows"),
        ("garbage.npy", b"hello world, not numpy".to_vec(), vec![], "not an .npy file"),
        (
            "wrong-width.f32",
            vec![0u8; 4 * 50 * 10],
            vec!["--columns", "50"],
            "the rows have 50 values each (X-Score-Columns: 50), but model logreg takes 100",
        ),
        // Settings by name: one parser, one sentence, for flags and --set.
        (
            "set-unknown.f32",
            vec![0u8; 400],
            vec!["--columns", "100", "--set", "user_agnet=x"],
            "unknown setting \"user_agnet\"; the settings are urls,",
        ),
        (
            "set-bad.f32",
            vec![0u8; 400],
            vec!["--columns", "100", "--set", "max_attempts=never"],
            "max_attempts \"never\" is not valid",
        ),
        (
            "timeout.f32",
            vec![0u8; 400],
            vec!["--columns", "100", "--timeout", "0s"],
            "timeout \"0s\" is not valid: must be a positive number of seconds",
        ),
    ];
    for (name, bytes, extra, message) in cases {
        let input = dir.join(name);
        std::fs::write(&input, bytes).expect("write");
        let output = dir.join(format!("{name}.out.f32"));
        let mut args =
            vec!["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
        args.extend(extra);
        let out = client(&server.url(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: succeeded");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert_eq!(stderr.matches(message).count(), 1, "{name}: said more than once: {stderr}");
        assert!(!output.exists(), "{name}: an output was left");
        assert!(
            !dir.join(format!("{name}.out.f32.partial")).exists(),
            "{name}: a partial output was left"
        );
    }
    std::fs::remove_dir_all(dir).expect("clean");
}

mod parquet_files {
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use arrow_array::{ArrayRef, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch =
            RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect())
                .expect("batch");
        let mut w = ArrowWriter::try_new(File::create(path).expect("create"), schema, None)
            .expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    /// The `score` column, flattened.
    fn scores(path: &Path) -> Vec<f32> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let col = batch.column_by_name("score").expect("score column");
            match col.data_type() {
                DataType::Float32 => out.extend(col.as_primitive::<Float32Type>().values().iter()),
                // Spark's array<float>, as every output of the client builds it.
                _ => out.extend(
                    col.as_list::<i32>().values().as_primitive::<Float32Type>().values().iter(),
                ),
            }
        }
        out
    }

    #[test]
    fn parquet_columns_and_list_layouts_round_trip() {
        let server = real_server("logreg", &[]);
        let dir = tmpdir("parquet");
        let rows = 2_500;
        let input = values(rows, 100);
        let expected = direct(&server.url(), &input);

        // 100 float64 feature columns and an int64 id that is not a feature.
        let mut columns: Vec<(String, ArrayRef)> = (0..100)
            .map(|c| {
                let col: Vec<f64> = (0..rows).map(|r| input[r * 100 + c] as f64).collect();
                (format!("f{c:03}"), Arc::new(Float64Array::from(col)) as ArrayRef)
            })
            .collect();
        columns.insert(0, ("id".into(), Arc::new(Int64Array::from_iter_values(0..rows as i64))));
        let named: Vec<(&str, ArrayRef)> =
            columns.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        write(&dir.join("cols.parquet"), named);
        let out = client(
            &server.url(),
            &[
                "--input",
                dir.join("cols.parquet").to_str().unwrap(),
                "--output",
                dir.join("cols.out.parquet").to_str().unwrap(),
                "--batch-rows",
                "600",
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(scores(&dir.join("cols.out.parquet")), expected);

        // One list<float32> column.
        let list = ListArray::from_iter_primitive::<Float32Type, _, _>(
            input.chunks(100).map(|r| Some(r.iter().map(|v| Some(*v)).collect::<Vec<_>>())),
        );
        write(&dir.join("list.parquet"), vec![("features", Arc::new(list) as ArrayRef)]);
        let out = client(
            &server.url(),
            &[
                "--input",
                dir.join("list.parquet").to_str().unwrap(),
                "--output",
                dir.join("list.out.f32").to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(read_f32(&dir.join("list.out.f32")), expected);

        // A null feature fails loudly, naming the row, and leaves nothing.
        let mut with_null: Vec<Option<f32>> = (0..10).map(|i| Some(i as f32)).collect();
        with_null[7] = None;
        let cols: Vec<(String, ArrayRef)> = (0..100)
            .map(|c| {
                let a: ArrayRef = if c == 3 {
                    Arc::new(Float32Array::from(with_null.clone()))
                } else {
                    Arc::new(Float32Array::from(vec![0.5f32; 10]))
                };
                (format!("f{c:03}"), a)
            })
            .collect();
        write(
            &dir.join("null.parquet"),
            cols.iter().map(|(n, a)| (n.as_str(), a.clone())).collect(),
        );
        let out = client(
            &server.url(),
            &[
                "--input",
                dir.join("null.parquet").to_str().unwrap(),
                "--output",
                dir.join("null.out.parquet").to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("row 7: column \"f003\" is null"), "{stderr}");
        assert!(!dir.join("null.out.parquet").exists());
        assert!(!dir.join("null.out.parquet.partial").exists());
        std::fs::remove_dir_all(dir).expect("clean");
    }

    /// A dataset as Spark writes it: a directory of part files beside
    /// `_SUCCESS` and checksums, read in name order; the same through a
    /// pattern; `--keep id` beside the score; stdout with `-`; and the
    /// CLI's own environment prefix (a server's SCORE_MODEL is not read).
    #[test]
    fn a_spark_dataset_directory_keeps_its_ids() {
        let server = real_server("logreg", &[]);
        let dir = tmpdir("dataset");
        let data = dir.join("features");
        std::fs::create_dir_all(data.join("_temporary")).expect("dirs");
        let rows = 900;
        let input = values(rows, 100);
        let expected = direct(&server.url(), &input);
        for (part, range) in [(0, 0..400), (1, 400..700), (2, 700..900)] {
            let list = ListArray::from_iter_primitive::<Float32Type, _, _>(
                input[range.start * 100..range.end * 100]
                    .chunks(100)
                    .map(|r| Some(r.iter().map(|v| Some(*v)).collect::<Vec<_>>())),
            );
            let ids = Int64Array::from_iter_values(range.map(|i| i as i64));
            write(
                &data.join(format!("part-0000{part}-abc.snappy.parquet")),
                vec![("id", Arc::new(ids) as ArrayRef), ("features", Arc::new(list) as ArrayRef)],
            );
            std::fs::write(data.join(format!(".part-0000{part}-abc.snappy.parquet.crc")), b"crc")
                .expect("crc");
        }
        std::fs::write(data.join("_SUCCESS"), b"").expect("marker");
        std::fs::write(data.join("_temporary").join("junk.parquet"), b"not parquet").expect("junk");

        let scored = |input: &Path, output: &str| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_score-client"));
            command
                .args(["--input", input.to_str().unwrap(), "--keep", "id", "--output", output])
                .env("SCORE_CLIENT_URL", server.url())
                .env("SCORE_MODEL", "churn=/models/churn.onnx");
            command.output().expect("run score-client")
        };
        let check = |path: &Path| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open"))
                .expect("parquet")
                .build()
                .expect("reader");
            let mut ids: Vec<i64> = Vec::new();
            for batch in reader {
                let batch = batch.expect("batch");
                assert_eq!(batch.schema().field(0).name(), "id");
                assert_eq!(batch.schema().field(1).name(), "score");
                ids.extend(
                    batch
                        .column(0)
                        .as_primitive::<arrow_array::types::Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
            assert_eq!(ids, (0..rows as i64).collect::<Vec<_>>());
            assert_eq!(scores(path), expected);
        };

        let out = scored(&data, dir.join("by-dir.parquet").to_str().unwrap());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        check(&dir.join("by-dir.parquet"));

        let out =
            scored(&data.join("part-*.parquet"), dir.join("by-glob.parquet").to_str().unwrap());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        check(&dir.join("by-glob.parquet"));

        let out = scored(&data, "-");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.join("stdout.parquet"), &out.stdout).expect("write");
        check(&dir.join("stdout.parquet"));

        // --keep needs somewhere to keep the column; a pattern that matches
        // nothing says so.
        let out = scored(&data, dir.join("scores.npy").to_str().unwrap());
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("the output must be .parquet"));
        let out = scored(&data.join("nothing-*.parquet"), dir.join("x.parquet").to_str().unwrap());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no file matches this pattern"));
        std::fs::remove_dir_all(dir).expect("clean");
    }

    /// A model fed by name (a ColumnTransformer export: floats, an int64,
    /// strings): the Parquet columns named after its inputs are sent as
    /// they are, whatever their order and with other columns beside them.
    #[test]
    fn parquet_string_columns_feed_a_model_by_name() {
        let server = real_server("zoo/mixed-logreg", &[]);
        let dir = tmpdir("by-name");
        let (columns, expected) = crate::common::mixed_reference();
        let repeat = 50;
        let columns: Vec<(String, ArrayRef)> = columns
            .into_iter()
            .map(|(n, a)| {
                let parts: Vec<&dyn arrow_array::Array> =
                    std::iter::repeat_n(a.as_ref(), repeat).collect();
                (n, arrow_select::concat::concat(&parts).expect("concat"))
            })
            .collect();
        write(
            &dir.join("customers.parquet"),
            columns.iter().map(|(n, a)| (n.as_str(), a.clone())).collect(),
        );
        let out = client(
            &server.url(),
            &[
                "--input",
                dir.join("customers.parquet").to_str().unwrap(),
                "--output",
                dir.join("scores.parquet").to_str().unwrap(),
                "--output-name",
                "probabilities",
                "--batch-rows",
                "64",
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = scores(&dir.join("scores.parquet"));
        assert_eq!(got.len(), expected.len() * repeat);
        for (i, g) in got.iter().enumerate() {
            let e = expected[i % expected.len()];
            assert!((g - e).abs() <= 1e-5, "score {i}: {g}, onnxruntime {e}");
        }

        // A .f32 input cannot carry strings: said at once.
        write_f32(&dir.join("rows.f32"), &[0.0; 10]);
        let out = client(
            &server.url(),
            &[
                "--input",
                dir.join("rows.f32").to_str().unwrap(),
                "--output",
                dir.join("rows.out.f32").to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr
                .contains("is fed by name (5 inputs): the input must be Parquet, with one column"),
            "{stderr}"
        );
        std::fs::remove_dir_all(dir).expect("clean");
    }

    /// An embedding model and a Parquet text column: one vector per text,
    /// as the Python tokenizers + onnxruntime pipeline gives it (cosine >=
    /// 0.9999), texts over the limit cut with --truncate; without it the
    /// run fails naming the text and leaves no output.
    #[test]
    fn parquet_text_column_gives_embeddings() {
        let (Some(dir), Some(reference)) =
            (std::env::var_os("SCORE_EMBED_DIR"), std::env::var_os("SCORE_EMBED_REFERENCE"))
        else {
            assert!(
                std::env::var_os("SCORE_REQUIRE_ONNXRUNTIME").is_none(),
                "SCORE_EMBED_DIR / SCORE_EMBED_REFERENCE unset: eval \"$(scripts/embedding-reference.sh)\""
            );
            eprintln!("skipped: eval \"$(scripts/embedding-reference.sh)\" first");
            return;
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(reference).expect("reference")).expect("JSON");
        let rows = doc["rows"].as_array().expect("rows");
        let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().expect("text")).collect();
        let want: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| {
                let v = r["embedding"].as_array().expect("vector");
                v.iter().map(|x| x.as_f64().expect("float") as f32).collect()
            })
            .collect();
        let server = real_server(&format!("mini={}", dir.to_str().expect("UTF-8 path")), &[]);
        let work = tmpdir("texts");
        let copies = 10;
        let all: Vec<&str> = (0..copies).flat_map(|_| texts.iter().copied()).collect();
        let n = all.len();
        write(
            &work.join("texts.parquet"),
            vec![
                ("id", Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef),
                ("text", Arc::new(arrow_array::StringArray::from(all)) as ArrayRef),
            ],
        );
        let run = |extra: &[&str], output: &str| {
            let input = work.join("texts.parquet");
            let output = work.join(output);
            let mut args = vec![
                "--input",
                input.to_str().expect("path"),
                "--output",
                output.to_str().expect("path"),
                "--model",
                "mini",
                "--batch-rows",
                "32",
            ];
            args.extend_from_slice(extra);
            client(&server.url(), &args)
        };
        let out = run(&["--truncate"], "vectors.parquet");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = scores(&work.join("vectors.parquet"));
        let dim = want[0].len();
        assert_eq!(got.len(), n * dim);
        for (i, v) in got.chunks(dim).enumerate() {
            let w = &want[i % texts.len()];
            let dot: f32 = v.iter().zip(w).map(|(a, b)| a * b).sum();
            let norms = v.iter().map(|a| a * a).sum::<f32>().sqrt()
                * w.iter().map(|b| b * b).sum::<f32>().sqrt();
            assert!(dot / norms >= 0.9999, "text {i}: cosine {}", dot / norms);
        }

        let out = run(&[], "refused.parquet");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("is longer than the model's limit of"), "{stderr}");
        assert!(stderr.contains("?truncate=true"), "{stderr}");
        assert!(!work.join("refused.parquet").exists());
        std::fs::remove_dir_all(work).expect("clean");
    }
}

/// SIGTERM (or ctrl-c) mid-job: the partial output is removed and the exit
/// code says the job was interrupted.
#[test]
fn an_interrupted_run_leaves_no_partial_output() {
    use axum::Router;
    use axum::routing::put;
    // A server that never answers: the job is mid-flight when interrupted.
    let server = common::stub(Router::new().route(
        "/score",
        put(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            ""
        }),
    ));
    let dir = tmpdir("sigterm");
    let (input, output) = (dir.join("in.f32"), dir.join("out.f32"));
    write_f32(&input, &values(100, 4));
    let child = Command::new(env!("CARGO_BIN_EXE_score-client"))
        .args(["--url", &server.url(), "--columns", "4"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start score-client");
    let partial = dir.join("out.f32.partial");
    let started = std::time::Instant::now();
    while !partial.exists() {
        assert!(started.elapsed().as_secs() < 60, "no partial output appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The client listens for signals before it creates the partial file.
    let killed =
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(!partial.exists(), "{} left behind", partial.display());
    assert!(!output.exists());
    assert!(stderr.contains("interrupted"), "{stderr}");
}

/// The job's model version: printed when the job ends, and given up front
/// with --model-version, a server serving another fails the job with a
/// sentence naming both and leaves no output.
#[test]
fn the_model_version_is_reported_and_can_be_pinned() {
    let server = real_server("logreg", &[]);
    let dir = tmpdir("version");
    let input = dir.join("in.f32");
    write_f32(&input, &values(500, 100));
    let out = dir.join("out.f32");
    let served = reqwest::blocking::get(format!("{}/models", server.url()))
        .expect("models")
        .json::<serde_json::Value>()
        .expect("JSON")["models"][0]["version"]
        .as_str()
        .expect("version")
        .to_string();
    let run = client(
        &server.url(),
        &["--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("model version {served}")), "{stderr}");

    let _ = std::fs::remove_file(&out);
    let pinned = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model-version",
        "0123456789abcdef",
    ];
    let run = client(&server.url(), &pinned);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("0123456789abcdef") && stderr.contains(&served), "{stderr}");
    assert!(stderr.contains("pinned"), "{stderr}");
    assert!(!out.exists(), "no output after a failed job");
    let _ = std::fs::remove_dir_all(&dir);
}
