//! The batched write path and the short-read rule (see "Why the write path batches" in
//! `engine::shard::traffic` and `read_ready` in `engine::shard::events`), against a
//! hand-written WebSocket server that sees the raw bytes: how many frames each `read`
//! brought, their sequence numbers, and when it reads at all.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::{UNTIL_STOPPED, WAIT, run, run_until, stage};
use wsscale::engine::marker::Marker;
use wsscale::metrics::DropReason;
use wsscale::plan::{MessageSpec, Plan, Target};

/// What the server saw on one connection.
#[derive(Debug, Default)]
struct Seen {
    /// Complete data frames that each `read` finished.
    frames_per_read: Vec<usize>,
    /// The marker sequence of every data frame, in arrival order.
    seqs: Vec<u32>,
    /// A close frame arrived (after every data frame).
    closed: bool,
}

/// Read the upgrade request and answer 101.
fn upgrade(s: &mut TcpStream) {
    let mut req = Vec::new();
    let mut b = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "request cut short");
        req.push(b[0]);
    }
    let text = String::from_utf8(req).unwrap();
    let key = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("sec-websocket-key:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .expect("a Sec-WebSocket-Key");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .unwrap();
}

/// One complete masked client frame at the start of `buf`: (opcode, payload, length used).
fn client_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0x80, "client frames are masked");
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => panic!("no frame here is that large"),
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = buf.get(at..at + 4)?.try_into().unwrap();
    at += 4;
    let payload = buf.get(at..at + len)?;
    let payload = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i & 3])
        .collect();
    Some((buf[0] & 0x0f, payload, at + len))
}

/// A server on `127.0.0.1:0` (receive buffer `rcvbuf` when given) that upgrades one
/// connection, waits for `go`, then reads frames until the client's close — echoing data
/// frames when `echo` — and records what it saw.
fn server(
    rcvbuf: Option<usize>,
    echo: bool,
    go: Arc<AtomicBool>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        // Inherited by the accepted socket; also turns off receive-buffer autotuning.
        sock.set_recv_buffer_size(n).unwrap();
    }
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(8).unwrap();
    let listener: TcpListener = sock.into();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        upgrade(&mut s);
        util::eventually("the test lets the server read", || {
            go.load(Ordering::Relaxed)
        });
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut frames = 0;
            let mut reply = Vec::new();
            while let Some((op, payload, used)) = client_frame(&buf) {
                buf.drain(..used);
                let mut seen = out.lock().unwrap();
                if op == 0x8 {
                    seen.closed = true;
                    // The echoes of this read's frames first, then the close reply.
                    reply.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
                    let _ = s.write_all(&reply);
                    return;
                }
                frames += 1;
                let m = Marker::find(&payload).expect("every timed message carries a marker");
                seen.seqs.push(m.seq);
                if echo {
                    assert!(payload.len() < 126);
                    reply.extend_from_slice(&[0x80 | op, payload.len() as u8]);
                    reply.extend_from_slice(&payload);
                }
                drop(seen);
            }
            out.lock().unwrap().frames_per_read.push(frames);
            if !reply.is_empty() {
                s.write_all(&reply).unwrap();
            }
        }
    });
    (addr, seen)
}

fn plan_for(addr: SocketAddr, rate: f64, hold_ms: u64) -> Plan {
    let mut p = util::plan(
        vec![Target::ws(addr, "/")],
        vec![stage(0, 1), stage(hold_ms, 1)],
    );
    p.connect_timeout = util::TIMEOUT;
    p.handshake_timeout = util::TIMEOUT;
    p.close_timeout = WAIT;
    p.traffic.message = Some(MessageSpec {
        rate,
        size: 64,
        text: None,
        timeout: WAIT,
    });
    p
}

/// The sequence numbers are exactly 0, 1, 2, … — every message arrived as its own frame,
/// none merged, split, lost or reordered.
fn assert_consecutive(seqs: &[u32]) {
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s as usize, i, "frame {i} carries sequence {s}");
    }
}

#[test]
fn a_fast_schedule_writes_several_frames_per_call_each_timed_on_its_own() {
    // 5,000 messages/s on one connection: 5 fall due in each 1 ms send tick, and go out in
    // one write — the server's reads bring whole batches.
    let (addr, seen) = server(None, true, Arc::new(AtomicBool::new(true)));
    let o = run(&plan_for(addr, 5000.0, 1000));
    let c = &o.totals.counters;
    let seen = seen.lock().unwrap();
    assert!(
        seen.closed,
        "the client closed after its last message: {seen:?}"
    );
    assert!(c.messages_sent >= 1000, "{c:?}");
    assert_eq!(seen.seqs.len() as u64, c.messages_sent);
    assert_consecutive(&seen.seqs);
    // Every echo came back and was timed from its own intended send time.
    assert_eq!(c.messages_received, c.messages_sent);
    assert_eq!(c.messages_lost, 0);
    assert_eq!(o.totals.hist.message_rtt.len(), c.messages_received);
    assert_eq!(o.totals.hist.schedule_lag.len(), c.messages_sent);
    // Batches: one write per send tick carries the ~5 messages due in it. (One write per
    // message would show one frame per read here: the server reads as soon as it can.)
    let mut per_read: Vec<usize> = seen
        .frames_per_read
        .iter()
        .copied()
        .filter(|&n| n > 0)
        .collect();
    per_read.sort_unstable();
    let median = per_read[per_read.len() / 2];
    assert!(
        median >= 2,
        "median frames per read {median} (reads: {})",
        per_read.len()
    );
}

#[test]
fn what_the_kernel_refuses_mid_batch_is_kept_and_sent_in_order() {
    // The server does not read until the client has sent far more than the small socket
    // buffers on both sides hold (4 KiB each, doubled by the kernel): the rest of every
    // batch the kernel refused must wait in the connection's output queue, then arrive
    // whole and in order once the server reads.
    let go = Arc::new(AtomicBool::new(false));
    let (addr, seen) = server(Some(4096), false, go.clone());
    let mut plan = plan_for(addr, 20_000.0, UNTIL_STOPPED);
    plan.socket_sndbuf = Some(4096);
    let o = run_until(&plan, "3,000 messages sent (≈ 210 KB)", |c| {
        let enough = c.messages_sent >= 3000;
        if enough {
            go.store(true, Ordering::Relaxed);
        }
        enough
    });
    let c = &o.totals.counters;
    let seen = seen.lock().unwrap();
    assert!(
        seen.closed,
        "the close frame came after the queue: {seen:?}"
    );
    assert!(c.messages_sent >= 3000);
    assert_eq!(seen.seqs.len() as u64, c.messages_sent);
    assert_consecutive(&seen.seqs);
    assert_eq!(c.dropped, 0, "{c:?}");
}

#[test]
fn data_and_fin_in_one_event_are_both_seen() {
    // The server's 101, a frame and its FIN arrive in one segment (corked until the
    // shutdown attaches the FIN to the queued data), so the client sees them in one event:
    // the short read that takes the bytes must not end the reading — the FIN would not be
    // announced again and the connection would look open forever.
    let addr = util::tcp_server(|mut s| {
        socket2::SockRef::from(&s).set_tcp_cork(true).unwrap();
        upgrade(&mut s);
        s.write_all(&[0x81, 5, b'h', b'e', b'l', b'l', b'o'])
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        util::drain(&mut s);
    });
    let mut plan = util::plan_for(addr, vec![stage(0, 1), stage(UNTIL_STOPPED, 1)]);
    plan.close_timeout = Duration::from_secs(1);
    let o = run_until(&plan, "the connection dropped", |c| c.dropped >= 1);
    let c = &o.totals.counters;
    assert_eq!(c.other_messages_received, 1, "{c:?}");
    assert_eq!(
        c.drops.get(&DropReason::Eof).copied().unwrap_or(0),
        1,
        "{c:?}"
    );
}

#[test]
fn a_ping_and_a_message_due_together_go_out_in_one_write() {
    // A ping and a message every 100 ms on one connection: they share the connection's
    // phase, so each ping falls due with a message and both leave in one write — the
    // server's reads bring them together. (Two writes would show a read with the ping alone
    // now and then: the server reads as soon as anything arrives.)
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    // Per read: (pings, data frames); and the data segments the server's socket received.
    let reads = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let segments = Arc::new(Mutex::new(None::<u32>));
    let out = reads.clone();
    let segs = segments.clone();
    std::thread::spawn(move || {
        let (mut s, _) = sock.accept().unwrap();
        upgrade(&mut s);
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let (mut pings, mut data, mut reply) = (0, 0, Vec::new());
            while let Some((op, payload, used)) = client_frame(&buf) {
                buf.drain(..used);
                let op = match op {
                    0x8 => {
                        *segs.lock().unwrap() = Some(data_segments_in(&s));
                        let _ = s.write_all(&[0x88, 2, 0x03, 0xe8]);
                        return;
                    }
                    0x9 => {
                        pings += 1;
                        0xA // pong with the ping's payload
                    }
                    op => {
                        data += 1;
                        op
                    }
                };
                assert!(payload.len() < 126);
                reply.extend_from_slice(&[0x80 | op, payload.len() as u8]);
                reply.extend_from_slice(&payload);
            }
            out.lock().unwrap().push((pings, data));
            s.write_all(&reply).unwrap();
        }
    });
    let mut plan = plan_for(addr, 10.0, 1500);
    plan.traffic.ping = Some(wsscale::plan::PingSpec {
        interval: Duration::from_millis(100),
        timeout: WAIT,
    });
    let o = run(&plan);
    let c = &o.totals.counters;
    assert!(c.pings_sent >= 10, "{c:?}");
    // Answered, but for the last pair, which may still be in flight when the hold ends and
    // the close begins.
    assert!(c.pongs_received + 1 >= c.pings_sent, "{c:?}");
    assert!(c.messages_received + 1 >= c.messages_sent, "{c:?}");
    let reads = reads.lock().unwrap();
    let pings: usize = reads.iter().map(|r| r.0).sum();
    assert_eq!(pings as u64, c.pings_sent);
    let alone: Vec<_> = reads.iter().filter(|r| r.0 > 0 && r.1 == 0).collect();
    assert!(
        alone.is_empty(),
        "every ping arrived with its message: {reads:?}"
    );
    // One segment per write (TCP_NODELAY, tiny frames): the upgrade request, one per
    // message with its ping, the close. Two writes per ping and message would be about
    // twice the messages. (Reads alone cannot tell: the second write lands before the
    // server thread wakes up for the first.)
    let segments = segments.lock().unwrap().expect("the server saw the close");
    assert!(
        u64::from(segments) <= c.messages_sent + 3,
        "{segments} data segments for {} messages and {} pings: the pings went out in \
         writes of their own",
        c.messages_sent,
        c.pings_sent
    );
}

/// `tcpi_data_segs_in` of a socket: the segments with data it received.
fn data_segments_in(s: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info of `len` bytes; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_data_segs_in
}
