//! Hostile servers (issue 14): each test runs the engine against an in-process server on
//! port 0 that completes the upgrade and then misbehaves, AND against the healthy embedded
//! gateway in the same run (two targets, `N` connections each, round-robin). Every test
//! asserts how each hostile connection is classified (failure category or drop reason),
//! that the healthy target's connections are all established and none of them failed or
//! dropped (the exact drop and failure totals leave no room for them), that the run ends
//! without a panic (`engine::run` returns `Ok`), and that the largest per-connection
//! receive buffer (`Gauges::buffered_peak`, a high-water mark over the run) stayed within
//! `--max-frame` plus a frame header, or within the 16 KiB response-head cap.
//!
//! The servers' pauses (a byte per 250 ms) are the hostile behaviour itself; the tests wait
//! on the engine's snapshots with a deadline, never on the clock.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tungstenite::handshake::derive_accept_key;
use util::{UNTIL_STOPPED, WAIT, spawn, stage};
use wsscale::engine::ws::MAX_RESPONSE_HEAD;
use wsscale::engine::{self, RunOptions};
use wsscale::gateway::GatewayConfig;
use wsscale::metrics::{DropReason, FailureKind, RunOutcome, Snapshot};
use wsscale::plan::{Plan, Target};

/// Connections per target (hostile, healthy) unless a test needs more variants.
const N: u64 = 3;

/// `--max-frame` of these runs.
const MAX_FRAME: u64 = 1 << 20;

/// The largest frame header (2 + 8 bytes of length; server frames carry no mask).
const MAX_HEADER: u64 = 14;

/// Read an upgrade request; its `Sec-WebSocket-Key`.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&buf).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| v.trim().to_string())
    })
}

/// A valid `101` answer to `key`.
fn accept_head(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// A server that reads the upgrade request and runs `f` with the stream, the request's key
/// and the connection's index (0, 1, … in accept order).
fn raw_server(f: impl Fn(TcpStream, &str, usize) + Send + Sync + 'static) -> SocketAddr {
    let count = AtomicUsize::new(0);
    util::tcp_server(move |mut s| {
        let Some(key) = read_request(&mut s) else {
            return;
        };
        f(s, &key, count.fetch_add(1, Ordering::Relaxed));
    })
}

/// A server that completes the upgrade, then runs `after` (the connection's index given).
fn hostile(after: impl Fn(&mut TcpStream, usize) + Send + Sync + 'static) -> SocketAddr {
    raw_server(move |mut s, key, i| {
        if s.write_all(&accept_head(key)).is_ok() {
            after(&mut s, i);
        }
    })
}

/// Send `frames` (concatenated), then hold the connection until the client ends it.
fn send_and_hold(s: &mut TcpStream, frames: &[&[u8]]) {
    for f in frames {
        if s.write_all(f).is_err() {
            return;
        }
    }
    util::drain(s);
}

/// A plan of `n` connections to `hostile` and `n` to a healthy gateway (round-robin: the
/// hostile target is index 0), held until stopped.
fn two_targets(hostile: SocketAddr, healthy: SocketAddr, n: u64) -> Plan {
    let mut plan = util::plan(
        vec![Target::ws(hostile, "/"), Target::ws(healthy, "/")],
        vec![stage(200, 2 * n), stage(UNTIL_STOPPED, 2 * n)],
    );
    plan.connect_timeout = util::TIMEOUT;
    plan.handshake_timeout = util::TIMEOUT;
    plan.close_timeout = Duration::from_millis(300);
    plan.max_frame = MAX_FRAME;
    plan
}

/// Run `plan` until `done` holds for the totals so far (with the current gauges), then stop
/// it; the outcome. Fails when `done` does not hold within [`WAIT`], the run ends first, or
/// the engine returns an error (a shard panicked).
fn drive(plan: &Plan, what: &str, mut done: impl FnMut(&Snapshot) -> bool) -> RunOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = RunOptions::new(stop.clone());
    let (tx, rx) = mpsc::channel();
    opts.observer = Some(tx);
    opts.snapshot_every = Duration::from_millis(50);
    let plan = plan.clone();
    let outcome = spawn(move || engine::run(&plan, &opts));
    let deadline = Instant::now() + WAIT;
    let mut totals = Snapshot::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((snapshot, last)) => {
                totals.merge_deltas(&snapshot);
                totals.gauges = snapshot.gauges.clone();
                if done(&totals) {
                    break;
                }
                assert!(!last, "the run ended before {what}: {:?}", totals.counters);
            }
            Err(e) => panic!("{e:?} waiting for {what}: {:?}", totals.counters),
        }
    }
    stop.store(true, Ordering::Relaxed);
    outcome
        .recv_timeout(WAIT)
        .expect("the run ends once stopped")
        .expect("the engine run ends without an error (no shard panicked)")
}

/// Established connections of target `t` so far.
fn established(s: &Snapshot, t: usize) -> u64 {
    s.per_target.get(t).map_or(0, |c| c.established)
}

/// Failed attempts of target `t` so far.
fn failed(s: &Snapshot, t: usize) -> u64 {
    s.per_target.get(t).map_or(0, |c| c.failed)
}

/// The healthy target (index 1) got all `n` connections established and none failed.
fn assert_healthy(o: &RunOutcome, n: u64) {
    assert_eq!(established(&o.totals, 1), n, "{:?}", o.totals.per_target);
    assert_eq!(failed(&o.totals, 1), 0, "{:?}", o.totals.per_target);
}

/// Per-connection receive buffers stayed within `bound` bytes.
fn assert_bounded(o: &RunOutcome, bound: u64) {
    let peak = o.totals.gauges.buffered_peak;
    assert!(
        peak <= bound,
        "a connection buffered {peak} bytes (> {bound})"
    );
}

/// Every one of `n` established hostile connections was dropped for `reason`, nothing else
/// dropped or failed, and only the healthy connections were closed by the client.
fn assert_all_dropped(o: &RunOutcome, n: u64, reason: DropReason) {
    let c = &o.totals.counters;
    assert_healthy(o, n);
    assert_eq!(established(&o.totals, 0), n, "{c:?}");
    assert_eq!(c.drops.get(&reason), Some(&n), "{:?}", c.drops);
    assert_eq!(
        c.dropped, n,
        "only the hostile connections drop: {:?}",
        c.drops
    );
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(
        c.closed, n,
        "the healthy connections are closed at the end: {c:?}"
    );
    assert_bounded(o, MAX_FRAME + MAX_HEADER);
}

/// Run a case whose hostile connections all end as drops: stop once the healthy side is up
/// and `dropped` reached `n`.
fn dropped_case(server: SocketAddr, n: u64, what: &str) -> RunOutcome {
    let gw = util::gateway(GatewayConfig::default(), 1);
    let plan = two_targets(server, gw.local_addr(), n);
    drive(&plan, what, |s| {
        established(s, 1) == n && s.gauges.open >= n && s.counters.dropped >= n
    })
}

#[test]
fn random_bytes_after_the_upgrade_are_a_protocol_drop() {
    // Fixed seed: the same bytes on every connection and every run.
    let mut rng = fastrand::Rng::with_seed(14);
    let junk: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    let server = hostile(move |s, _| send_and_hold(s, &[&junk]));
    let o = dropped_case(server, N, "random bytes");
    assert_all_dropped(&o, N, DropReason::Protocol);
}

#[test]
fn a_frame_of_2_pow_63_bytes_is_refused_without_buffering() {
    let server = hostile(|s, i| {
        // 2^63 (the MSB that RFC 6455 forbids) and 2^63 − 1, both far past --max-frame.
        let len: u64 = if i % 2 == 0 { 1 << 63 } else { (1 << 63) - 1 };
        let mut f = vec![0x82, 127];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[0u8; 64]);
        send_and_hold(s, &[&f]);
    });
    let o = dropped_case(server, N, "2^63-byte frame headers");
    assert_all_dropped(&o, N, DropReason::Protocol);
    assert_bounded(&o, MAX_HEADER + 64);
}

#[test]
fn a_trickled_frame_is_held_as_a_partial_frame_and_then_delivered() {
    const FRAME: [u8; 8] = [0x82, 6, b't', b'r', b'i', b'c', b'k', b'!'];
    let server = hostile(|s, _| {
        for b in FRAME {
            if s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        util::drain(s);
    });
    let gw = util::gateway(GatewayConfig::default(), 1);
    let plan = two_targets(server, gw.local_addr(), N);
    let o = drive(&plan, "the trickled frames", |s| {
        established(s, 1) == N && s.counters.other_messages_received >= N
    });
    let c = &o.totals.counters;
    assert_healthy(&o, N);
    assert_eq!(
        c.other_messages_received, N,
        "one message per connection: {c:?}"
    );
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(c.closed, 2 * N, "{c:?}");
    // At most the partial frame was held, and something was held.
    let peak = o.totals.gauges.buffered_peak;
    assert!(
        (1..FRAME.len() as u64).contains(&peak),
        "buffered_peak {peak}"
    );
}

#[test]
fn a_trickled_response_head_ends_at_the_handshake_timeout() {
    let server = raw_server(|mut s, key, _| {
        for b in accept_head(key) {
            if s.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        util::drain(&mut s);
    });
    let gw = util::gateway(GatewayConfig::default(), 1);
    let mut plan = two_targets(server, gw.local_addr(), N);
    plan.handshake_timeout = Duration::from_secs(2);
    let o = drive(&plan, "handshake timeouts", |s| {
        established(s, 1) == N && s.counters.failed >= N
    });
    let c = &o.totals.counters;
    assert_healthy(&o, N);
    assert_eq!(c.failures_of(FailureKind::HandshakeTimeout), N, "{c:?}");
    assert_eq!(c.failed, N, "{c:?}");
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_bounded(&o, accept_head("x").len() as u64);
}

#[test]
fn an_endless_response_head_is_handshake_too_large() {
    let server = raw_server(|mut s, _, i| {
        let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
        // Even connections: one header line that never ends; odd: header lines forever.
        let chunk: &[u8] = if i % 2 == 0 {
            b"X-Endless: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        } else {
            b"X-More: a\r\n"
        };
        while s.write_all(chunk).is_ok() {}
    });
    let gw = util::gateway(GatewayConfig::default(), 1);
    let plan = two_targets(server, gw.local_addr(), N);
    let o = drive(&plan, "oversized heads", |s| {
        established(s, 1) == N && s.counters.failed >= N
    });
    let c = &o.totals.counters;
    assert_healthy(&o, N);
    assert_eq!(c.failures_of(FailureKind::HandshakeTooLarge), N, "{c:?}");
    assert_eq!(c.failed, N, "{c:?}");
    assert_eq!(c.dropped, 0, "{c:?}");
    assert!(c.examples.contains_key("handshake_too_large"), "{c:?}");
    assert_bounded(&o, MAX_RESPONSE_HEAD as u64);
}

#[test]
fn reserved_bits_without_negotiated_compression_are_a_protocol_drop() {
    let server = hostile(|s, i| {
        // RSV1, RSV2, RSV3 on a binary frame; the plan offers no compression.
        let first = [0xC2u8, 0xA2, 0x92][i % 3];
        send_and_hold(s, &[&[first, 0x01, b'x']]);
    });
    let o = dropped_case(server, N, "reserved-bit frames");
    assert_all_dropped(&o, N, DropReason::Protocol);
}

#[test]
fn invalid_utf8_text_is_a_protocol_drop_and_valid_split_text_is_not() {
    let server = hostile(|s, i| {
        // Valid first: "a€" split inside the euro sign, then a whole text frame.
        let valid: [&[u8]; 3] = [
            &[0x01, 0x02, b'a', 0xE2],
            &[0x80, 0x02, 0x82, 0xAC],
            &[0x81, 0x02, b'o', b'k'],
        ];
        let bad: &[&[u8]] = match i % 3 {
            0 => &[&[0x81, 0x02, 0xC3, 0x28]], // broken 2-byte sequence
            1 => &[&[0x01, 0x01, 0xE2], &[0x80, 0x01, b'x']], // broken across fragments
            _ => &[&[0x81, 0x03, 0xED, 0xA0, 0x80]], // a UTF-16 surrogate
        };
        let mut all: Vec<&[u8]> = valid.to_vec();
        all.extend_from_slice(bad);
        send_and_hold(s, &all);
    });
    let o = dropped_case(server, N, "invalid UTF-8 text");
    assert_all_dropped(&o, N, DropReason::Protocol);
    // The three valid frames of each connection went through (the broken ones did not).
    let got = o.totals.counters.other_messages_received;
    assert!((3 * N..=4 * N).contains(&got), "{got}");
}

#[test]
fn unsolicited_pongs_are_ignored() {
    let server = hostile(|s, _| {
        let mut far = vec![0x8A, 0x08];
        far.extend_from_slice(&u64::MAX.to_be_bytes());
        send_and_hold(
            s,
            &[
                &[0x8A, 0x00],
                &[0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
                &far,
                &[0x8A, 0x03, b'a', b'b', b'c'],
                &[0x81, 0x04, b'd', b'o', b'n', b'e'],
            ],
        );
    });
    let gw = util::gateway(GatewayConfig::default(), 1);
    let plan = two_targets(server, gw.local_addr(), N);
    let o = drive(&plan, "the pongs and the final text", |s| {
        established(s, 1) == N && s.counters.other_messages_received >= N
    });
    let c = &o.totals.counters;
    assert_healthy(&o, N);
    // Five frames per hostile connection, and the gateway's answers to our closes.
    assert_eq!(c.frames_received, 5 * N + N, "{c:?}");
    assert_eq!(
        c.pongs_received, 0,
        "no pong answered a ping of ours: {c:?}"
    );
    assert_eq!(o.totals.hist.ping_rtt.len(), 0, "no RTT sample from them");
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(c.closed, 2 * N, "{c:?}");
}

#[test]
fn close_frames_with_reserved_codes_are_a_protocol_drop() {
    const CODES: [u16; 8] = [1005, 1006, 1015, 999, 0, 1004, 1016, 2999];
    let n = CODES.len() as u64;
    let server = hostile(|s, i| {
        let code = CODES[i % CODES.len()].to_be_bytes();
        send_and_hold(s, &[&[0x88, 0x02, code[0], code[1]]]);
    });
    let o = dropped_case(server, n, "reserved close codes");
    assert_all_dropped(&o, n, DropReason::Protocol);
    let codes: Vec<_> = o.totals.counters.drops.keys().collect();
    assert_eq!(codes, [&DropReason::Protocol], "no close_<code> drop");
}

#[test]
fn interleaved_fragments_are_a_protocol_drop() {
    let server = hostile(|s, i| {
        let frames: &[&[u8]] = match i % 3 {
            // A new binary message while a text message is open.
            0 => &[&[0x01, 0x01, b'a'], &[0x82, 0x01, b'b']],
            // A continuation with no message open.
            1 => &[&[0x80, 0x01, b'x']],
            // Legal first (a ping between fragments), then a text start inside a binary one.
            _ => &[
                &[0x02, 0x01, b'a'],
                &[0x89, 0x00],
                &[0x80, 0x01, b'b'],
                &[0x02, 0x01, b'c'],
                &[0x01, 0x01, b'd'],
            ],
        };
        send_and_hold(s, frames);
    });
    let o = dropped_case(server, N, "interleaved fragments");
    assert_all_dropped(&o, N, DropReason::Protocol);
    assert_eq!(
        o.totals.counters.pings_answered, 1,
        "the ping between fragments"
    );
}

#[test]
fn a_server_that_never_answers_the_close_is_ended_by_the_close_timeout() {
    let server = hostile(|s, _| util::drain(s));
    let gw = util::gateway(GatewayConfig::default(), 1);
    let plan = two_targets(server, gw.local_addr(), N);
    let o = drive(&plan, "every connection open", |s| {
        established(s, 1) == N && s.gauges.open == 2 * N
    });
    let c = &o.totals.counters;
    assert_healthy(&o, N);
    assert_eq!(c.closed, 2 * N, "{c:?}");
    assert_eq!(
        c.close_timeouts, N,
        "only the silent server's closes time out: {c:?}"
    );
    assert_eq!(c.dropped, 0, "{c:?}");
    assert_eq!(o.totals.gauges.closing, 0, "no close handshake left open");
}
