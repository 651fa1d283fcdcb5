//! Smoke tests of the real binary: threshold exit codes (0 / 99 / usage error), the JSON and
//! CSV reports it writes, and a progressive profile. Every run targets the embedded gateway
//! with a handful of connections and sub-second stages; the thresholds are chosen so their
//! verdict does not depend on timing (`failed<0` can never pass, `failed>=0` always does).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// `wsscale run -c 20 --ramp 200ms --hold 300ms --ramp-down 100ms EXTRA…`
fn run(extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-c",
        "20",
        "--ramp",
        "200ms",
        "--hold",
        "300ms",
        "--ramp-down",
        "100ms",
        "--interval",
        "100ms",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    Command::new(BIN)
        .args(&args)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn failed_threshold_exits_99_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let csv = dir.path().join("ts.csv");
    let out = run(&[
        "--threshold",
        "failed<0",
        "--threshold",
        "failed>=0",
        "--report-json",
        json.to_str().unwrap(),
        "--report-csv",
        csv.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Thresholds (1 of 2 FAILED)"), "{stdout}");
    assert!(stdout.contains("✗ failed<0"), "{stdout}");
    assert!(stdout.contains("✓ failed>=0"), "{stdout}");

    let doc = read_json(&json);
    let t = doc["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["expr"], "failed<0");
    assert_eq!(t[0]["passed"], false);
    assert_eq!(t[1]["passed"], true);
    assert_eq!(t[0]["measured"], t[1]["measured"]);
    assert_eq!(doc["aborted_by_threshold"], false);

    // The CSV has the JSON's time series: a header and one line per interval.
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines[0], wsscale::report::csv::CSV_HEADER);
    assert_eq!(
        lines.len() - 1,
        doc["timeseries"].as_array().unwrap().len(),
        "{csv_text}"
    );
}

#[test]
fn passing_thresholds_exit_0() {
    let out = run(&["--threshold", "failed>=0", "--threshold", "dropped >= 0"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Thresholds (all 2 passed)"), "{stdout}");
}

#[test]
fn unknown_metric_is_a_usage_error_listing_valid_names() {
    let out = run(&["--threshold", "nosuch<1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "--threshold",
        "unknown metric \"nosuch\"",
        "connect_success_rate",
        "message_rtt_ms",
        "p99",
        "messages.lost_rate",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn bad_profile_threshold_exits_2_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "connections = 1\n[thresholds]\nnosuch = \"<1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", p.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input exits 2: {stderr}");
    assert!(stderr.contains("p.toml:3:10"), "{stderr}");
    assert!(stderr.contains("valid metrics:"), "{stderr}");
}

/// A two-step progressive profile of tiny steps.
fn progressive(dir: &Path, first_step_threshold: &str) -> std::path::PathBuf {
    let step = |name: &str, extra: &str| {
        std::fs::write(
            dir.join(name),
            format!(
                "description = \"{name}\"\nconnections = 5\nramp = \"100ms\"\nhold = \"100ms\"\n\
                 ramp_down = \"0s\"\ninterval = \"100ms\"\nthreads = 1\n{extra}"
            ),
        )
        .unwrap();
    };
    step(
        "one.toml",
        &format!("[thresholds]\nfailed = \"{first_step_threshold}\"\n"),
    );
    step("two.toml", "");
    let p = dir.join("prog.toml");
    std::fs::write(
        &p,
        "description = \"two tiny steps\"\nsteps = [\"one.toml\", \"two.toml\"]\ncool_down = \"0s\"\n",
    )
    .unwrap();
    p
}

#[test]
fn progressive_runs_every_step_and_writes_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let prof = progressive(dir.path(), ">=0");
    let json = dir.path().join("steps.json");
    let out = Command::new(BIN)
        .args([
            "run",
            prof.to_str().unwrap(),
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("=== Step 1/2: one"), "{stdout}");
    assert!(stdout.contains("=== Step 2/2: two"), "{stdout}");
    assert!(stdout.contains("2 of 2 step(s) ran"), "{stdout}");
    let doc = read_json(&json);
    assert_eq!(doc["schema_version"], 1);
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["stages"][0]["target"], 5);
    assert_eq!(steps[0]["thresholds"][0]["passed"], true);
}

#[test]
fn progressive_stops_after_a_failed_step_and_exits_99() {
    let dir = tempfile::tempdir().unwrap();
    let prof = progressive(dir.path(), "<0");
    let json = dir.path().join("steps.json");
    let out = Command::new(BIN)
        .args([
            "run",
            prof.to_str().unwrap(),
            "--report-json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(99),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("remaining steps are skipped"), "{stdout}");
    assert!(!stdout.contains("=== Step 2/2"), "{stdout}");
    let doc = read_json(&json);
    assert_eq!(doc["steps"].as_array().unwrap().len(), 1);
    assert_eq!(doc["steps"][0]["thresholds"][0]["passed"], false);
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_report() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-c",
            "20",
            "--ramp",
            "100ms",
            "--hold",
            "10m",
            "--interval",
            "100ms",
            "--threads",
            "1",
            "--report-json",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Wait (on the live output, not on a timer) until all 20 connections are open.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("open 20/20") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Keep draining stderr so the child never blocks on a full pipe.
    for _ in lines {}
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit 130");
    let r = read_json(&json);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["connections"]["established"], 20);
    assert_eq!(
        r["connections"]["closed"], 20,
        "everything was closed before exiting"
    );
}

#[test]
fn unreachable_target_is_exit_1_with_an_explanation() {
    // Bind then drop: nothing listens on that port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(&["--target", &format!("ws://{addr}/ws")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no target is reachable"), "{err}");
    assert!(err.contains(&addr.to_string()), "{err}");
}

// ---------------------------------------------------------------------------------------
// Secrets in target URLs, busy ports, closed pipes.

/// Asserts that neither output of `out` shows `secret`, and that `***` stands in for it.
fn assert_redacted(out: &Output, secret: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the secret is echoed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("***") || stderr.contains("***"),
        "no *** in the output:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn a_password_or_token_in_a_target_url_is_never_echoed() {
    const SECRET: &str = "TOPSECRETPW";
    // Nothing listens on this port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // (1) An unreachable target with a password: refused (user info is never sent).
    let out = run(&["--target", &format!("ws://alice:{SECRET}@{addr}/")]);
    assert!(!out.status.success());
    assert_redacted(&out, SECRET);
    assert!(text(&out.stderr).contains("ws://alice:***@"));
    // (2) A malformed one (no host).
    let out = run(&["--target", &format!("ws://alice:{SECRET}@/x")]);
    assert!(!out.status.success());
    assert_redacted(&out, SECRET);
    // (3) An unreachable target with a token in the query: the probe's message.
    let out = run(&["--target", &format!("ws://{addr}/ws?room=1&token={SECRET}")]);
    assert_eq!(out.status.code(), Some(1));
    assert_redacted(&out, SECRET);
    assert!(text(&out.stderr).contains("?room=1&token=***"));
    // (4) preflight probes it too, in the table and in the JSON.
    for json in [false, true] {
        let mut args = vec![
            "preflight".to_string(),
            "-c".into(),
            "1".into(),
            "--target".into(),
            format!("ws://{addr}/ws?token={SECRET}"),
        ];
        if json {
            args.push("--json".into());
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_redacted(&out, SECRET);
    }
}

/// A `wsscale serve …` child that is stopped with SIGTERM (and reaped) when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// Starts `wsscale serve ARGS` and returns it with its first stdout line (empty when it
/// exited without printing one).
fn serve(args: &[&str]) -> (Serve, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Serve(child), line)
}

#[test]
fn serve_on_a_busy_port_exits_1_and_says_how_to_share_it() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    for extra in [&[][..], &["--processes", "2"][..]] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string()])
            .args(extra)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains(&format!(
                "{addr} is in use by another process (give another --listen port, or \
                 --reuse-port to share it deliberately)"
            )),
            "{extra:?}: {err}"
        );
        assert!(!text(&out.stdout).contains("listening on"), "{extra:?}");
    }
    // The bare-port form means 127.0.0.1:PORT and finds the same busy port.
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr.port().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("{addr} is in use")));
}

#[test]
fn two_serves_with_reuse_port_share_a_port() {
    // Keep the port reserved (bound with SO_REUSEPORT, not listening) while the servers start.
    let reserve = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    reserve.set_reuse_address(true).unwrap();
    reserve.set_reuse_port(true).unwrap();
    reserve
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let addr = reserve.local_addr().unwrap().as_socket().unwrap();
    let listen = addr.to_string();
    let (_a, first) = serve(&["--listen", &listen, "--reuse-port", "--threads", "1"]);
    assert_eq!(first.trim(), format!("listening on ws://{addr}/"));
    let (_b, second) = serve(&["--listen", &listen, "--reuse-port", "--threads", "1"]);
    assert_eq!(second.trim(), format!("listening on ws://{addr}/"));
    // A third without --reuse-port is refused rather than joining them.
    let out = Command::new(BIN)
        .args(["serve", "--listen", &listen])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is in use by another process"));
}

#[test]
fn serve_processes_children_share_their_port() {
    let (_s, line) = serve(&[
        "--listen",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--threads",
        "1",
    ]);
    assert!(
        line.starts_with("listening on ws://127.0.0.1:") && line.contains("(2 processes"),
        "{line}"
    );
}

#[test]
fn listen_accepts_port_host_and_address_forms() {
    use std::net::SocketAddr;
    use wsscale::cli::args::parse_listen;
    let v4 = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(parse_listen("8080"), Ok(v4("127.0.0.1:8080")));
    assert_eq!(parse_listen(" 0 "), Ok(v4("127.0.0.1:0")));
    assert_eq!(parse_listen("0.0.0.0:8085"), Ok(v4("0.0.0.0:8085")));
    assert_eq!(parse_listen("[::1]:8085"), Ok(v4("[::1]:8085")));
    let local = parse_listen("localhost:8085").unwrap();
    assert!(local.ip().is_loopback() && local.port() == 8085, "{local}");
    for bad in [
        "",
        "localhost",
        "0.0.0.0",
        "::1",
        "70000",
        "host:port",
        "[::1]",
        ":8080",
    ] {
        let e = parse_listen(bad).expect_err(bad);
        assert!(
            e.contains("write PORT (8080, on 127.0.0.1), IP:PORT (0.0.0.0:8080)"),
            "{bad}: {e}"
        );
    }
}

/// Runs `wsscale ARGS` with a standard output whose reader is already gone, as in
/// `wsscale preflight | head -1` once `head` has exited.
fn run_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn preflight_and_tune_end_quietly_on_a_closed_pipe() {
    for args in [
        &["preflight", "-c", "1000"][..],
        &["preflight", "-c", "1000", "--json"][..],
        &["tune", "-c", "1000"][..],
        &["tune", "-c", "1000", "--all"][..],
    ] {
        let out = run_into_closed_pipe(args);
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        assert!(
            out.status.code().is_some(),
            "{args:?}: killed: {:?}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
