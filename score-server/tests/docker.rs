//! The image and the fleet in real containers: `docker/Dockerfile`'s image
//! alone, then three of it behind `docker/nginx.Dockerfile`'s nginx as
//! `docker/compose.yaml` runs them, fed by stream-client from this process.
//!
//! Ignored by default: they need a Docker engine and take minutes.
//! `scripts/test.sh` runs them when `docker info` answers:
//!
//! ```sh
//! cargo nextest run --workspace -E 'binary(docker)' --run-ignored only --no-capture
//! ```
//!
//! The test builds what is missing of the base images
//! (`docker/base-images.sh`) and the images, tagged `test`, with this
//! build's binary (`docker/build.sh` with `BINARY`; CI compiles once), and
//! removes every container and network it started, also when it fails.
//! The commands are docs/deploying.md's, with a project name and
//! port of the test's own. The figures (time to ready, the client's
//! retries, what nginx resent) are printed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::jobs::{NginxLog, assert_same_scores, config, get, row, run_job, summary};
use stream_client::{Client, Stats};

/// The tag of the images the test builds (not `latest`: an operator's
/// images are left alone).
const TAG: &str = "test";
/// Rows in each job.
const JOB_ROWS: u64 = 1_000_000;
/// Outputs per row of the demo model the image bakes in (two probabilities).
const OUTPUTS: usize = 2;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`, panicking with its output unless it succeeds; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

/// `docker compose` (the plugin) where there is one, else `docker-compose`;
/// asked once.
fn compose_program() -> &'static [String] {
    static PROGRAM: OnceLock<Vec<String>> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let plugin = Command::new("docker")
            .args(["compose", "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if plugin { vec!["docker".into(), "compose".into()] } else { vec!["docker-compose".into()] }
    })
}

/// The images: the base images where missing, then score-server:test and
/// score-nginx:test.
fn build_images() {
    let started = Instant::now();
    run(Command::new(repo().join("docker/base-images.sh")).current_dir(repo()));
    run(Command::new(repo().join("docker/build.sh"))
        .current_dir(repo())
        .env("SCORE_TAG", TAG)
        .env("BINARY", env!("CARGO_BIN_EXE_score-server")));
    let sizes = docker(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Size}}",
        "--filter",
        &format!("reference=score-*:{TAG}"),
    ]);
    println!("images built in {:.0?}: {}", started.elapsed(), sizes.replace('\n', ", "));
}

/// What the test started, removed on drop (a failed assertion too), with
/// the containers' last log lines printed first when failing.
struct Cleanup {
    containers: Vec<String>,
    project: Option<String>,
}

impl Cleanup {
    fn compose(&self, args: &[&str]) -> Command {
        let program = compose_program();
        let mut cmd = Command::new(&program[0]);
        cmd.args(&program[1..])
            .args(["-f", "docker/compose.yaml", "-p"])
            .arg(self.project.as_deref().expect("a compose project"))
            .args(args)
            .current_dir(repo())
            .env("SCORE_TAG", TAG)
            // Any free port on 127.0.0.1; one worker and CPU per replica
            // (three replicas and nginx share this machine's cores).
            .env("SCORE_PORT", "0")
            .env("SCORE_CPUS", "1");
        cmd
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for id in &self.containers {
                let _ = Command::new("docker").args(["logs", "--tail", "30", id]).status();
            }
            if self.project.is_some() {
                let _ = self.compose(&["logs", "--tail", "30"]).status();
            }
        }
        for id in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", id]).stdout(Stdio::null()).status();
        }
        if self.project.is_some() {
            let _ = self
                .compose(&["down", "-v", "--remove-orphans", "-t", "5"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn health(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Health.Status}}", container])
}

/// Waits until the container's health is `want`; how long that took.
fn wait_health(container: &str, want: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = health(container);
        if now == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{container}: {now}, not {want} within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `url` until it answers 200; how long that took.
fn wait_ready(url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while get(url).is_none_or(|(status, _)| status != 200) {
        assert!(started.elapsed() < limit, "{url} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

fn client(url: &str) -> Client {
    Client::new(config(&[url.to_string()])).expect("client")
}

fn report(what: &str, stats: &Stats, nginx: &NginxLog) {
    println!("{what}: {}", summary(stats, nginx));
}

#[test]
#[ignore = "needs a Docker engine; scripts/test.sh runs it: cargo nextest run --workspace -E 'binary(docker)' --run-ignored only"]
fn the_image_and_a_fleet_of_it_behind_nginx() {
    build_images();
    let mut cleanup = Cleanup {
        containers: Vec::new(),
        project: Some(format!("score-docker-test-{}", std::process::id())),
    };

    // --- The image alone, as docs/deploying.md runs it: read-only, non-root.
    let started = Instant::now();
    let single = docker(&[
        "run",
        "-d",
        "--read-only",
        "-p",
        "127.0.0.1::8099",
        &format!("score-server:{TAG}"),
    ]);
    cleanup.containers.push(single.clone());
    let addr = docker(&["port", &single, "8099/tcp"]);
    let direct = format!("http://{}", addr.lines().next().expect("a published port"));
    wait_ready(&format!("{direct}/readyz"), Duration::from_secs(60));
    let ready = started.elapsed();
    let top = docker(&["top", &single, "-eo", "pid,uid,comm"]);
    assert!(
        top.lines().skip(1).all(|l| l.split_whitespace().nth(1) == Some("65532")),
        "not every process runs as uid 65532:\n{top}"
    );
    let healthy = wait_health(&single, "healthy", Duration::from_secs(60));
    println!("docker run → ready (/readyz 200): {ready:.2?}; healthy {healthy:.1?} later");

    // The reference: the job against that container directly.
    let want = run_job(&client(&direct), (0..JOB_ROWS).map(row), |_| {}).expect("direct job");
    assert_eq!(want.len(), JOB_ROWS as usize * OUTPUTS);

    // --- Three replicas and nginx.
    let up = Instant::now();
    run(&mut cleanup.compose(&["up", "-d", "--no-build"]));
    let nginx_addr = run(&mut cleanup.compose(&["port", "nginx", "8080"]));
    let url = format!("http://{}", nginx_addr.lines().next().expect("nginx's port"));
    wait_ready(&format!("{url}/readyz"), Duration::from_secs(60));
    println!("compose up → nginx ready: {:.1?}", up.elapsed());
    let container = |service: &str| run(&mut cleanup.compose(&["ps", "-q", service]));
    let nginx_log = || {
        // nginx flushes its access log every second.
        std::thread::sleep(Duration::from_millis(1500));
        NginxLog::parse(&docker(&["logs", &container("nginx")]))
    };

    // Through nginx: the same scores as directly.
    let before = nginx_log();
    let c = client(&url);
    let got = run_job(&c, (0..JOB_ROWS).map(row), |_| {}).expect("job through nginx");
    assert_same_scores(&got, &want);
    let log = nginx_log().since(&before);
    report("through nginx", &c.stats(), &log);
    assert_eq!(log.statuses.keys().collect::<Vec<_>>(), ["200"], "nginx answered {log:?}");

    // `docker kill` of a replica a third of the way through.
    let victim = container("score-2");
    let before = nginx_log();
    let c = client(&url);
    let mut killed = false;
    let got = run_job(&c, (0..JOB_ROWS).map(row), |batch| {
        if !killed && batch.first_row >= JOB_ROWS / 3 {
            docker(&["kill", &victim]);
            killed = true;
        }
    })
    .expect("job with a replica killed");
    assert!(killed, "the job ended before the kill");
    assert_same_scores(&got, &want);
    let log = nginx_log().since(&before);
    report("docker kill mid-job", &c.stats(), &log);
    // Back for what follows (the restart policy does not restart a killed
    // container); nginx sets a failed replica aside for 2 s.
    run(&mut cleanup.compose(&["start", "score-2"]));
    wait_health(&victim, "healthy", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));

    // A rolling restart, one replica at a time, as docs/deploying.md does it,
    // under a job that runs until all three are back (and 200,000 rows
    // more); the job cycles over the reference's rows.
    let before = nginx_log();
    let produced = Arc::new(AtomicU64::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let input = {
        let (produced, restarted) = (produced.clone(), restarted.clone());
        let mut tail_until = None;
        (0..).map_while(move |i: u64| {
            produced.store(i, Ordering::Relaxed);
            if tail_until.is_none() && restarted.load(Ordering::Relaxed) {
                tail_until = Some(i + 200_000);
            }
            tail_until.is_none_or(|end| i < end).then(|| row(i % JOB_ROWS))
        })
    };
    let c = client(&url);
    let (outcome, restarts) = std::thread::scope(|scope| {
        let restarts = scope.spawn(|| {
            while produced.load(Ordering::Relaxed) < 100_000 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut at_rows = Vec::new();
            for service in ["score-1", "score-2", "score-3"] {
                at_rows.push(produced.load(Ordering::Relaxed));
                run(&mut cleanup.compose(&["restart", "-t", "40", service]));
                wait_health(&container(service), "healthy", Duration::from_secs(60));
                std::thread::sleep(Duration::from_secs(3));
            }
            restarted.store(true, Ordering::Relaxed);
            at_rows
        });
        let mut rows = 0u64;
        let outcome = c.score_rows(input).try_for_each(|batch| {
            let batch = batch?;
            assert_eq!(batch.first_row, rows, "batches out of order or missing");
            for (k, chunk) in batch.values.chunks(OUTPUTS).enumerate() {
                let i = ((rows + k as u64) % JOB_ROWS) as usize;
                assert_same_scores(chunk, &want[i * OUTPUTS..(i + 1) * OUTPUTS]);
            }
            rows += batch.rows as u64;
            Ok::<_, stream_client::ScoreError>(())
        });
        (outcome.map(|()| rows), restarts.join().expect("restart thread"))
    });
    let rows = outcome.expect("zero failed rows during a rolling restart");
    assert!(restarts.iter().all(|&at| at < rows), "a restart began after the last row");
    let log = nginx_log().since(&before);
    println!("rolling restart: {rows} rows; restarts began at rows {restarts:?}");
    report("rolling restart", &c.stats(), &log);
    assert_eq!(log.statuses.keys().collect::<Vec<_>>(), ["200"], "nginx answered {log:?}");

    // --- A hung server (SIGSTOP: the port still accepts, nothing answers)
    // is marked unhealthy by the image's HEALTHCHECK, healthy again after.
    docker(&["kill", "-s", "STOP", &single]);
    let unhealthy = wait_health(&single, "unhealthy", Duration::from_secs(90));
    docker(&["kill", "-s", "CONT", &single]);
    let recovered = wait_health(&single, "healthy", Duration::from_secs(60));
    println!("hung → unhealthy in {unhealthy:.1?}; resumed → healthy in {recovered:.1?}");

    // SIGTERM drains inside `docker stop`'s default 10 s: exit code 0, not
    // 137 (SIGKILL).
    let stopping = Instant::now();
    docker(&["stop", &single]);
    let stopped = stopping.elapsed();
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &single]);
    assert_eq!(code, "0", "score-server did not drain and exit within docker stop's timeout");
    println!("docker stop: drained and exited 0 in {stopped:.1?}");
}
