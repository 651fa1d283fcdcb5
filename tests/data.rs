//! Per-connection data (`--data`, docs/data.md): rows reach the gateway in the URL, a
//! header, the JWT claims and the first message; `{agent}`/`{process}` are filled and differ
//! across `--processes 2`; `--data-mode unique` with too few rows, bad files, an unknown
//! column and an unset `${ENV}` in a profile are refused before the run (exit code 2) with
//! what, where and how to fix.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use wsscale::plan::Overrides;
use wsscale::plan::build::build_plan;

const BIN: &str = env!("CARGO_BIN_EXE_wsscale");

/// What one connection sent: its upgrade request head and its first text frame (if any).
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    first: Option<String>,
}

/// Read a masked client frame's payload.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u16::from_be_bytes(b) as u64;
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    s.read_exact(&mut mask).ok()?;
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Some(payload)
}

/// A WebSocket server that records every upgrade request and, when `first` is set, the first
/// frame of each connection; then it holds the connection until the client leaves.
fn recording_server(first: bool) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = util::tcp_server(move |mut s| {
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => buf.push(b[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default()
            .to_string();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let _ = write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let first = first
            .then(|| read_frame(&mut s))
            .flatten()
            .map(|p| String::from_utf8_lossy(&p).to_string());
        log.lock().unwrap().push(Seen { head, first });
        util::drain(&mut s);
    });
    (addr, seen)
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run_bin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn rows_reach_the_gateway_in_url_header_jwt_and_first_message() {
    let (addr, seen) = recording_server(true);
    let dir = tempfile::tempdir().unwrap();
    let csv = write_file(
        dir.path(),
        "users.csv",
        "user,room\nalice,r1\nbob,r2\ncarol,r3\n",
    );
    let args = Overrides {
        targets: vec![format!("ws://{addr}/ws/{{room}}?user={{user}}")],
        stages: vec![
            util::stage(300, 6).into(),
            util::stage(util::UNTIL_STOPPED, 6).into(),
        ],
        threads: Some(1),
        headers: vec![("X-User".into(), "{user}".into())],
        jwt_secret: Some(wsscale::plan::Secret("s3cret".into())),
        jwt_claims: Some(serde_json::json!({"sub": "{user}", "room": "{room}"})),
        first_message: Some("hello {user} from {agent}/{process}".into()),
        data: Some(csv),
        ..Default::default()
    };
    let plan = build_plan(&args).unwrap();
    let o = util::run_until(&plan, "6 connections", |c| c.established >= 6);
    assert_eq!(o.totals.counters.failed, 0);
    util::eventually("6 first messages recorded", || {
        seen.lock().unwrap().len() >= 6
    });
    let seen = seen.lock().unwrap().clone();
    let agent = &plan.identity.agent;
    let mut users = Vec::new();
    for s in &seen {
        let line = s.head.lines().next().unwrap();
        let user = line
            .split("user=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_string();
        let room = match user.as_str() {
            "alice" => "r1",
            "bob" => "r2",
            "carol" => "r3",
            other => panic!("unexpected user {other:?} in {line}"),
        };
        assert_eq!(line, format!("GET /ws/{room}?user={user} HTTP/1.1"));
        assert!(
            s.head.contains(&format!("X-User: {user}\r\n")),
            "{}",
            s.head
        );
        let jwt = s
            .head
            .lines()
            .find_map(|l| l.strip_prefix("Authorization: Bearer "))
            .unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["sub"], user.as_str());
        assert_eq!(claims["room"], room);
        assert_eq!(
            s.first.as_deref(),
            Some(format!("hello {user} from {agent}/0").as_str())
        );
        users.push(user);
    }
    users.sort();
    // Round-robin: 6 connections over 3 rows, each row twice.
    assert_eq!(users, ["alice", "alice", "bob", "bob", "carol", "carol"]);
}

#[test]
fn unique_mode_with_too_few_rows_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_file(dir.path(), "users.csv", "user\na\nb\nc\n");
    let csv = csv.to_str().unwrap();
    let o = run_bin(&[
        "run",
        "--target",
        "ws://127.0.0.1:9/?u={user}",
        "-c",
        "10",
        "--data",
        csv,
        "--data-mode",
        "unique",
        "--threads",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--data"), "{err}");
    assert!(err.contains("has 3 rows"), "{err}");
    assert!(err.contains("can open 10"), "{err}");
    assert!(err.contains("round-robin"), "{err}");
    // Enough rows: the same plan is accepted (and fails later only for the closed port).
    let ok = build_plan(&Overrides {
        targets: vec!["ws://127.0.0.1:9/?u={user}".into()],
        connections: Some(3),
        threads: Some(1),
        data: Some(dir.path().join("users.csv")),
        data_mode: Some(wsscale::plan::data::DataMode::Unique),
        ..Default::default()
    });
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn bad_data_files_and_unknown_columns_say_what_where_and_how() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("ragged.csv", "user,room\na,1\nb\n", "line 3"),
        ("empty.csv", "", "is empty"),
        ("header.csv", "user\n", "no rows"),
    ];
    for (name, text, want) in cases {
        let csv = write_file(dir.path(), name, text);
        let o = run_bin(&[
            "run",
            "--target",
            "ws://127.0.0.1:9/",
            "-c",
            "1",
            "--data",
            csv.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
    let csv = write_file(dir.path(), "users.csv", "user,room\na,1\n");
    let o = run_bin(&[
        "run",
        "--target",
        "ws://127.0.0.1:9/?u={usr}",
        "-c",
        "1",
        "--data",
        csv.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("{usr}") && err.contains("its columns: user, room"),
        "{err}"
    );
}

#[test]
fn an_unset_env_variable_in_a_profile_is_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "pods.toml",
        "connections = 1\ntargets = [\"ws://${WSSCALE_DATA_TEST_UNSET}/ws\"]\n",
    );
    let o = Command::new(BIN)
        .args(["run", profile.to_str().unwrap()])
        .env_remove("WSSCALE_DATA_TEST_UNSET")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WSSCALE_DATA_TEST_UNSET is not set") && err.contains("pods.toml:2:"),
        "{err}"
    );
}

#[test]
fn env_agent_process_and_unique_rows_reach_every_process() {
    let (addr, seen) = recording_server(false);
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "users.csv", "user\nu1\nu2\nu3\nu4\n");
    let profile = write_file(
        dir.path(),
        "pods.toml",
        "targets = [\"ws://${WSSCALE_DATA_TEST_GW}/p{process}/{agent}/{user}\"]\n\
         data = \"users.csv\"\ndata_mode = \"unique\"\n",
    );
    let o = Command::new(BIN)
        .args([
            "run",
            profile.to_str().unwrap(),
            "--processes",
            "2",
            "-c",
            "4",
        ])
        .args([
            "--threads",
            "2",
            "--ramp",
            "300ms",
            // A hold of several intervals: the coordinator's peak is sampled from the
            // agents' once-an-interval snapshots (a 1 s hold can show half the peak).
            "--hold",
            "3s",
            "--ramp-down",
            "0s",
        ])
        .arg("--skip-preflight")
        .env("WSSCALE_DATA_TEST_GW", addr.to_string())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.head.split(' ').nth(1).unwrap().to_string())
        .collect();
    paths.sort();
    // Each process its own {process} and {agent} (which agent joins first and becomes
    // process 0 is up to the race), and its own half of the rows: every connection a row of
    // its own.
    let parts: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| p.split('/').skip(1).collect())
        .collect();
    let rows: Vec<(&str, &str)> = parts.iter().map(|p| (p[0], p[2])).collect();
    assert_eq!(
        rows,
        [("p0", "u1"), ("p0", "u2"), ("p1", "u3"), ("p1", "u4")],
        "{paths:?}"
    );
    let mut agents: Vec<&str> = parts.iter().map(|p| p[1]).collect();
    assert_eq!(agents[0], agents[1], "{paths:?}");
    assert_eq!(agents[2], agents[3], "{paths:?}");
    agents.sort();
    agents.dedup();
    assert_eq!(agents, ["process-1", "process-2"], "{paths:?}");
}
