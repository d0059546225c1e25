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
    let got: Vec<f32> = reader.flat_map(|b| b.expect("block")).collect();
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
            "X-Score-Columns is 50",
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
        assert!(!output.exists(), "{name}: an output was left");
        assert!(
            !dir.join(format!("{name}.out.f32.partial")).exists(),
            "{name}: a partial output was left"
        );
    }
    std::fs::remove_dir_all(dir).expect("clean");
}
