//! permessage-deflate (`--compression`): negotiation against the embedded gateway and
//! hand-written servers, compressed echo both ways, what was not offered, a compression bomb,
//! fragmented compressed messages, and the browser handshake defaults.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::{UNTIL_STOPPED, run, run_until, stage, tcp_server};
use wsscale::engine::deflate::Compressors;
use wsscale::gateway::GatewayConfig;
use wsscale::metrics::{DropReason, FailureKind};
use wsscale::plan::compression::parse_compression;
use wsscale::plan::{MessageSpec, Plan};

fn plan_with(addr: SocketAddr, conns: u64, hold_ms: u64, compression: &str) -> Plan {
    let mut p = util::plan_for(
        addr,
        vec![stage(200, conns), stage(hold_ms, conns), stage(200, 0)],
    );
    p.handshake.compression = parse_compression(compression).unwrap();
    p
}

fn messages(p: &mut Plan, size: usize) {
    p.traffic.message = Some(MessageSpec {
        rate: 20.0,
        size,
        text: None,
        timeout: Duration::from_secs(5),
    });
}

#[test]
fn browser_offer_compresses_echo_both_ways_with_the_embedded_gateway() {
    let gw = util::gateway(
        GatewayConfig {
            compression: true,
            ..Default::default()
        },
        1,
    );
    let mut plan = plan_with(gw.local_addr(), 10, 1000, "browser");
    messages(&mut plan, 1024);
    let o = run(&plan);
    let c = &o.totals.counters;
    let z = &c.compression;
    assert_eq!(c.established, 10);
    assert_eq!((z.offered, z.accepted), (10, 10));
    assert_eq!(z.params.get("permessage-deflate"), Some(&10), "{z:?}");
    assert!(c.messages_sent >= 10, "{c:?}");
    assert_eq!(c.messages_received, c.messages_sent, "every echo inflated");
    assert_eq!(c.messages_lost, 0);
    assert_eq!(z.messages_compressed_sent, c.messages_sent);
    assert_eq!(z.messages_compressed_received, c.messages_received);
    assert_eq!(z.payload_bytes_sent, c.messages_sent * 1024);
    assert_eq!(z.payload_bytes_received, z.payload_bytes_sent);
    // Marker + filler compresses well.
    assert!(z.wire_bytes_sent * 4 < z.payload_bytes_sent, "{z:?}");
    assert!(
        z.wire_bytes_received * 4 < z.payload_bytes_received,
        "{z:?}"
    );
    // The gateway keeps its context: each connection needed its own inflate window, once.
    assert_eq!(z.inflate_windows, 10);
    let g = gw.stats();
    assert_eq!(g.deflate_accepted, 10);
    assert_eq!(g.deflate_windows, 10, "the client keeps its context too");
    assert_eq!(g.messages_echoed, c.messages_sent);

    // The report carries it all, valid against the committed schema; the summary shows it.
    let doc = wsscale::report::to_json(&o);
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/report-v1.json")).unwrap();
    let v = jsonschema::draft202012::new(&schema).unwrap();
    let errs: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:#?}");
    let j = &doc["compression"];
    assert_eq!(j["offered"], 10);
    assert_eq!(j["params"]["permessage-deflate"], 10);
    assert!(j["ratio_sent"].as_f64().unwrap() > 4.0, "{j}");
    let text = wsscale::report::summary_text(&o);
    assert!(text.contains("Compression (permessage-deflate)"), "{text}");
    assert!(text.contains("payload / wire sent"), "{text}");
}

#[test]
fn server_no_context_takeover_needs_no_window_per_connection() {
    let gw = util::gateway(
        GatewayConfig {
            compression: true,
            ..Default::default()
        },
        1,
    );
    let mut plan = plan_with(
        gw.local_addr(),
        4,
        600,
        "deflate:server_no_context_takeover,client_no_context_takeover,client_max_window_bits=9",
    );
    messages(&mut plan, 300);
    let o = run(&plan);
    let c = &o.totals.counters;
    let z = &c.compression;
    assert_eq!(c.established, 4);
    assert_eq!(
        z.params.get(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9"
        ),
        Some(&4),
        "{z:?}"
    );
    assert!(c.messages_received > 0);
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(z.inflate_windows, 0);
    assert_eq!(gw.stats().deflate_windows, 0);
}

#[test]
fn a_gateway_without_compression_declines_and_messages_stay_plain() {
    let gw = util::gateway(GatewayConfig::default(), 1);
    let mut plan = plan_with(gw.local_addr(), 3, 500, "browser");
    messages(&mut plan, 200);
    let o = run(&plan);
    let c = &o.totals.counters;
    let z = &c.compression;
    assert_eq!(c.established, 3);
    assert_eq!((z.offered, z.accepted), (3, 0));
    assert!(c.messages_received > 0);
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(z.messages_compressed_sent, 0);
    assert_eq!(z.wire_bytes_sent, z.payload_bytes_sent);
}

/// Read an upgrade request from `s`; returns it as text.
fn read_request(s: &mut TcpStream) -> String {
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).unwrap_or(0);
        if n == 0 {
            break;
        }
        req.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&req).into_owned()
}

/// Answer the upgrade request on `s` with 101 and `extensions` (if any).
fn accept(s: &mut TcpStream, extensions: Option<&str>) -> String {
    let req = read_request(s);
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    let _ = s.write_all(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{ext}\r\n"
        )
        .as_bytes(),
    );
    req
}

/// A raw server frame with first byte `first` and `payload`.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if payload.len() <= 65535 {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn compressed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressors::default().deflate(15, payload, &mut out);
    out
}

#[test]
fn answers_that_were_not_offered_or_are_malformed_fail_as_protocol() {
    for (offer, answer) in [
        ("none", "permessage-deflate"),
        ("browser", "permessage-deflate; client_max_window_bits=16"),
        ("browser", "permessage-deflate; mystery"),
        ("deflate", "permessage-deflate; client_max_window_bits=10"),
        ("browser", "x-webkit-deflate-frame"),
    ] {
        let answer = answer.to_string();
        let addr = tcp_server(move |mut s| {
            accept(&mut s, Some(&answer));
            util::drain(&mut s);
        });
        let plan = plan_with(addr, 2, UNTIL_STOPPED, offer);
        let o = run_until(&plan, "2 failures", |c| c.failed >= 2);
        let c = &o.totals.counters;
        assert_eq!(c.established, 0, "{offer}");
        assert_eq!(c.failures_of(FailureKind::Protocol), 2, "{offer}: {c:?}");
        assert!(c.examples.contains_key("protocol"), "{c:?}");
    }
}

#[test]
fn a_compression_bomb_drops_the_connection_as_protocol() {
    // 16 MiB of zeros deflate to ~16 KiB; --max-frame 64 KiB caps the inflated size.
    let bomb = compressed(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let addr = tcp_server(move |mut s| {
        accept(&mut s, Some("permessage-deflate"));
        let _ = s.write_all(&frame(0xC2, &bomb));
        util::drain(&mut s);
    });
    let mut plan = plan_with(addr, 2, UNTIL_STOPPED, "browser");
    plan.max_frame = 64 * 1024;
    let o = run_until(&plan, "2 drops", |c| c.dropped >= 2);
    let c = &o.totals.counters;
    assert_eq!(c.established, 2);
    assert_eq!(c.drops.get(&DropReason::Protocol), Some(&2), "{c:?}");
    assert!(
        c.examples
            .get("protocol")
            .is_some_and(|e| e.contains("--max-frame")),
        "{c:?}"
    );
    assert_eq!(c.compression.messages_compressed_received, 0);
}

#[test]
fn fragmented_and_context_takeover_messages_are_inflated() {
    let text = b"hello hello hello hello compressed world".repeat(20);
    let first = compressed(&text);
    let (a, b) = first.split_at(first.len() / 2);
    let (a, b) = (a.to_vec(), b.to_vec());
    // A second message that refers back to the first (context takeover): a raw deflate
    // stream continued across messages, as a server keeping its context sends it.
    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let mut m1 = Vec::with_capacity(4096);
    let mut m2 = Vec::with_capacity(4096);
    z.compress_vec(&text, &mut m1, flate2::FlushCompress::Sync)
        .unwrap();
    z.compress_vec(&text, &mut m2, flate2::FlushCompress::Sync)
        .unwrap();
    m1.truncate(m1.len() - 4);
    m2.truncate(m2.len() - 4);
    assert!(m2.len() < 20, "the second message is a back-reference");
    let addr = tcp_server(move |mut s| {
        accept(&mut s, Some("permessage-deflate"));
        let mut out = frame(0x41, &a); // text, RSV1, not final
        out.extend(frame(0x89, b"p")); // a ping between the fragments
        out.extend(frame(0x80, &b)); // continuation, final
        out.extend(frame(0xC1, &m1));
        out.extend(frame(0xC1, &m2));
        let _ = s.write_all(&out);
        util::drain(&mut s);
    });
    let plan = plan_with(addr, 1, UNTIL_STOPPED, "browser");
    let o = run_until(&plan, "3 compressed messages", |c| {
        c.compression.messages_compressed_received >= 3
    });
    let c = &o.totals.counters;
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(c.pings_answered, 1);
    assert_eq!(
        c.compression.payload_bytes_received,
        3 * text.len() as u64,
        "{c:?}"
    );
    assert_eq!(c.compression.inflate_windows, 1);
}

#[test]
fn browser_defaults_and_header_file_reach_the_request() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = tcp_server(move |mut s| {
        let req = accept(&mut s, None);
        let _ = tx.lock().unwrap().send(req);
        util::drain(&mut s);
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers.txt");
    std::fs::write(
        &file,
        "# from DevTools\nX-Trace: abc\n\nCookie: session=1\n",
    )
    .unwrap();
    let mut o = wsscale::plan::Overrides {
        targets: vec![format!("ws://{addr}/chat")],
        connections: Some(1),
        ramp: Some(Duration::from_millis(50)),
        compression: Some(parse_compression("browser").unwrap()),
        header_file: Some(file.clone()),
        ..Default::default()
    };
    let plan = wsscale::plan::build::build_plan(&o).unwrap();
    let _ = run_until(&plan, "1 connection", |c| c.established >= 1);
    let req = rx.recv_timeout(util::WAIT).unwrap();
    assert!(
        req.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
        "{req}"
    );
    assert!(req.contains(&format!("Origin: http://{addr}\r\n")), "{req}");
    assert!(req.contains("User-Agent: Mozilla/5.0"), "{req}");
    assert!(
        req.contains("X-Trace: abc\r\nCookie: session=1\r\n"),
        "{req}"
    );

    // --user-agent replaces the browser default; a bad line names FILE:LINE.
    o.user_agent = Some("probe/1".into());
    let plan = wsscale::plan::build::build_plan(&o).unwrap();
    assert_eq!(plan.handshake.user_agent.as_deref(), Some("probe/1"));
    std::fs::write(&file, "X-Ok: 1\nnot a header\n").unwrap();
    let e = wsscale::plan::build::build_plan(&o)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{}:2:", file.display())), "{e}");
    assert!(e.contains("no ':'"), "{e}");
}

#[test]
fn profile_keys_compression_and_user_agent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "targets = [\"ws://127.0.0.1:9/\"]\nconnections = 1\ncompression = \"deflate:server_no_context_takeover\"\nuser_agent = \"probe/2\"\n",
    )
    .unwrap();
    let o = wsscale::plan::Overrides {
        profile: Some(file.clone()),
        ..Default::default()
    };
    let plan = wsscale::plan::build::build_plan(&o).unwrap();
    assert_eq!(
        plan.handshake.compression.to_string(),
        "deflate:server_no_context_takeover"
    );
    assert_eq!(plan.handshake.user_agent.as_deref(), Some("probe/2"));
    // The flag wins over the profile.
    let o2 = wsscale::plan::Overrides {
        compression: Some(parse_compression("none").unwrap()),
        ..o.clone()
    };
    let plan = wsscale::plan::build::build_plan(&o2).unwrap();
    assert_eq!(plan.handshake.compression.offer(), None);
    // A bad value names file:line and the valid spellings.
    std::fs::write(
        &file,
        "targets = [\"ws://127.0.0.1:9/\"]\nconnections = 1\ncompression = \"gzip\"\n",
    )
    .unwrap();
    let e = wsscale::plan::build::build_plan(&o)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{}:3:", file.display())), "{e}");
    assert!(e.contains("use none, browser, deflate"), "{e}");
}
