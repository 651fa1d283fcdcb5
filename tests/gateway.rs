//! Integration tests of the embedded reference gateway (`wsscale::gateway`), driven by a
//! tokio-tungstenite client. Every gateway binds `127.0.0.1:0`; nothing sleeps to
//! synchronize (the few counters that settle after the client is done are polled with a
//! deadline).

mod util;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsscale::gateway::*;
use wsscale::plan::Secret;

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous bound for anything that should happen "promptly".
const DEADLINE: Duration = Duration::from_secs(5);

/// A gateway served by `run` on the test's own runtime.
struct TestGateway {
    addr: SocketAddr,
    stats: Arc<GatewayStats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl TestGateway {
    async fn start(config: GatewayConfig) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(GatewayStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, config, Arc::clone(&stats), async move {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            stats,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn connect(&self, path: &str) -> Result<Client, tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(self.url(path)).await?;
        Ok(ws)
    }

    async fn connect_with_header(
        &self,
        path: &str,
        name: &'static str,
        value: &str,
    ) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
        let mut request = self.url(path).into_client_request().unwrap();
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(value).unwrap());
        tokio_tungstenite::connect_async(request).await
    }

    /// Poll the counters until `done` holds (or fail after [`DEADLINE`]).
    async fn wait_for(&self, what: &str, done: impl Fn(GatewayCounts) -> bool) -> GatewayCounts {
        let start = Instant::now();
        loop {
            let counts = self.stats.snapshot();
            if done(counts) {
                return counts;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("run() returns within the shutdown grace")
            .expect("run() task did not panic")
            .expect("run() returns Ok");
    }
}

/// The next message, with a deadline so a broken gateway fails the test instead of hanging.
async fn next(ws: &mut Client) -> Message {
    tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("message within the deadline")
        .expect("stream still open")
        .expect("no protocol error")
}

fn http_status(result: Result<impl Sized, tungstenite::Error>) -> StatusCode {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("expected an HTTP error response, got {other:?}"),
        Ok(_) => panic!("expected an HTTP error response, the upgrade succeeded"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn jwt_config(secret: &str) -> GatewayConfig {
    GatewayConfig {
        jwt_secret: Some(Secret(secret.to_owned())),
        ..GatewayConfig::default()
    }
}

#[tokio::test]
async fn echoes_text_and_binary() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut ws = gw.connect("/ws?room=1").await.unwrap();

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(payload));

    let counts = gw.stats.snapshot();
    assert_eq!(counts.accepted, 1);
    assert_eq!(counts.upgraded, 1);
    assert_eq!(counts.open, 1);
    assert_eq!(counts.messages_echoed, 2);
    gw.stop().await;
}

#[tokio::test]
async fn echoes_a_message_larger_than_the_read_buffer() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut ws = gw.connect("/").await.unwrap();
    let payload = vec![7u8; 1024 * 1024];
    ws.send(Message::binary(payload.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(payload));
    gw.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut ws = gw.connect("/").await.unwrap();
    ws.send(Message::Ping(b"hb-1".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong(b"hb-1".to_vec().into()));
    assert_eq!(
        gw.stats.snapshot().messages_echoed,
        0,
        "pings are not echoes"
    );
    gw.stop().await;
}

#[tokio::test]
async fn client_close_completes_the_handshake() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut ws = gw.connect("/").await.unwrap();
    ws.close(None).await.unwrap();
    // The server's close reply arrives, then the stream ends.
    match next(&mut ws).await {
        Message::Close(_) => {}
        other => panic!("expected the close reply, got {other:?}"),
    }
    let end = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap();
    assert!(
        end.is_none(),
        "stream ends after the close handshake: {end:?}"
    );
    let counts = gw.wait_for("closed == 1", |c| c.closed == 1).await;
    assert_eq!(counts.open, 0);
    gw.stop().await;
}

#[tokio::test]
async fn subprotocol_first_offer_is_echoed() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let (mut ws, response) = gw
        .connect_with_header("/", "sec-websocket-protocol", "chat.v2, other")
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "chat.v2"
    );
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("x"));
    gw.stop().await;
}

#[tokio::test]
async fn jwt_valid_bearer_header_is_accepted() {
    let gw = TestGateway::start(jwt_config("s3cret")).await;
    let jwt = token(
        "s3cret",
        serde_json::json!({"sub": "u1", "exp": now_secs() + 3600}),
    );
    let (mut ws, _) = gw
        .connect_with_header("/ws", "authorization", &format!("Bearer {jwt}"))
        .await
        .unwrap();
    ws.send(Message::text("authed")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("authed"));
    assert_eq!(gw.stats.snapshot().rejected_auth, 0);
    gw.stop().await;
}

#[tokio::test]
async fn jwt_valid_query_token_is_accepted() {
    let gw = TestGateway::start(jwt_config("s3cret")).await;
    // No `exp` at all: claims are not required.
    let jwt = token("s3cret", serde_json::json!({"sub": "u2"}));
    let mut ws = gw.connect(&format!("/?token={jwt}")).await.unwrap();
    ws.send(Message::text("q")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("q"));
    let _ws2 = gw
        .connect(&format!("/ws?x=1&access_token={jwt}"))
        .await
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn jwt_wrong_secret_gets_401() {
    let gw = TestGateway::start(jwt_config("s3cret")).await;
    let jwt = token("not-the-secret", serde_json::json!({"sub": "u3"}));
    let result = gw
        .connect_with_header("/", "authorization", &format!("Bearer {jwt}"))
        .await;
    assert_eq!(http_status(result), StatusCode::UNAUTHORIZED);
    let counts = gw.stats.snapshot();
    assert_eq!(
        (counts.rejected_auth, counts.upgraded, counts.open),
        (1, 0, 0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn jwt_expired_token_gets_401() {
    let gw = TestGateway::start(jwt_config("s3cret")).await;
    let jwt = token("s3cret", serde_json::json!({"exp": now_secs() - 3600}));
    assert_eq!(
        http_status(gw.connect(&format!("/?token={jwt}")).await),
        StatusCode::UNAUTHORIZED
    );
    gw.stop().await;
}

#[tokio::test]
async fn jwt_missing_token_gets_401() {
    let gw = TestGateway::start(jwt_config("s3cret")).await;
    assert_eq!(
        http_status(gw.connect("/ws").await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(gw.stats.snapshot().rejected_auth, 1);
    gw.stop().await;
}

#[tokio::test]
async fn max_connections_rejects_the_third_with_503() {
    let gw = TestGateway::start(GatewayConfig {
        max_connections: Some(2),
        ..GatewayConfig::default()
    })
    .await;
    let _a = gw.connect("/").await.unwrap();
    let _b = gw.connect("/").await.unwrap();
    assert_eq!(
        http_status(gw.connect("/").await),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let counts = gw.stats.snapshot();
    assert_eq!((counts.open, counts.rejected_full), (2, 1));
    gw.stop().await;
}

#[tokio::test]
async fn echo_delay_delays_the_round_trip() {
    let delay = Duration::from_millis(200);
    let gw = TestGateway::start(GatewayConfig {
        echo_delay: Some(delay),
        ..GatewayConfig::default()
    })
    .await;
    let mut ws = gw.connect("/").await.unwrap();
    let sent = Instant::now();
    ws.send(Message::text("slow")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("slow"));
    let rtt = sent.elapsed();
    assert!(
        rtt >= delay,
        "round trip {rtt:?} shorter than the echo delay"
    );
    assert!(rtt < DEADLINE, "round trip {rtt:?} absurdly long");
    gw.stop().await;
}

#[tokio::test]
async fn echo_delay_does_not_hold_back_pongs() {
    let gw = TestGateway::start(GatewayConfig {
        echo_delay: Some(Duration::from_secs(1)),
        ..GatewayConfig::default()
    })
    .await;
    let mut ws = gw.connect("/").await.unwrap();
    ws.send(Message::text("first")).await.unwrap();
    ws.send(Message::Ping(b"hb".to_vec().into())).await.unwrap();
    // Sent after the text, the ping is answered before the delayed echo.
    assert_eq!(next(&mut ws).await, Message::Pong(b"hb".to_vec().into()));
    assert_eq!(next(&mut ws).await, Message::text("first"));
    gw.stop().await;
}

#[tokio::test]
async fn garbage_request_is_dropped_quietly() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut raw = TcpStream::connect(gw.addr).await.unwrap();
    raw.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    // The gateway closes the socket; EOF or a reset both end the read.
    let _ = tokio::time::timeout(DEADLINE, raw.read_to_end(&mut sink))
        .await
        .expect("gateway closes a garbage connection");
    gw.wait_for("handshake_failed == 1", |c| c.handshake_failed == 1)
        .await;
    // And it still serves others.
    let mut ws = gw.connect("/").await.unwrap();
    ws.send(Message::text("ok")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ok"));
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_sends_going_away_and_run_returns() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut ws = gw.connect("/").await.unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hi"));
    let stats = Arc::clone(&gw.stats);
    gw.stop().await;
    match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close frame, got {other:?}"),
    }
    assert_eq!(stats.snapshot().closed, 1);
    assert_eq!(stats.snapshot().open, 0);
}

#[test]
fn handle_start_stats_shutdown_from_sync_code() {
    let handle = util::gateway(GatewayConfig::default(), 1);
    let port = handle.local_addr().port();
    assert_ne!(port, 0);
    assert_eq!(handle.url(), format!("ws://127.0.0.1:{port}/"));

    let (mut ws, _) = tungstenite::connect(handle.url()).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    }
    ws.send(Message::text("sync")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("sync"));
    let counts = handle.stats();
    assert_eq!(counts.accepted, 1);
    assert_eq!(counts.upgraded, 1);
    assert_eq!(counts.open, 1);
    assert_eq!(counts.messages_echoed, 1);

    let started = Instant::now();
    handle.shutdown();
    assert!(started.elapsed() < DEADLINE, "shutdown is bounded");
    // The connection is gone: a close frame or the end of the stream, never a hang.
    match ws.read() {
        Ok(Message::Close(_)) | Err(_) => {}
        Ok(other) => panic!("expected the connection to end, got {other:?}"),
    }
}

#[test]
fn handle_drop_shuts_down() {
    let addr;
    {
        let handle = util::gateway(GatewayConfig::default(), 2);
        addr = handle.local_addr();
    }
    // After the drop nothing listens there any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn bind_reuseport_lets_two_listeners_share_a_port() {
    let first = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let second = bind_reuseport(addr).unwrap();
    assert_eq!(second.local_addr().unwrap(), addr);
}

// --- Server push (`push`) and the chat room (`broadcast`) -------------------------------

/// A push message, checked to be the documented JSON `{"ts":…,"seq":N,"pad":"xx…"}`.
#[derive(Debug)]
struct Push {
    ts_ms: f64,
    seq: u64,
    text: String,
}

fn parse_push(message: Message) -> Push {
    let Message::Text(text) = message else {
        panic!("a push is a text message, got {message:?}");
    };
    let text = text.as_str().to_owned();
    let v: serde_json::Value = serde_json::from_str(&text).expect("a push is JSON");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["pad", "seq", "ts"], "{text}");
    let pad = v["pad"].as_str().unwrap();
    assert!(pad.bytes().all(|b| b == b'x'), "{text}");
    Push {
        ts_ms: v["ts"].as_f64().expect("ts is a number"),
        seq: v["seq"].as_u64().expect("seq is an integer"),
        text,
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn push_config(rate: f64, size: usize) -> GatewayConfig {
    GatewayConfig {
        push: Some(PushConfig { rate, size }),
        ..GatewayConfig::default()
    }
}

/// Nothing arrives on `ws` within a short wait.
async fn assert_silent(ws: &mut Client, who: &str) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        panic!("{who} received {got:?}");
    }
}

#[tokio::test]
async fn push_feed_reaches_every_connection_with_increasing_seq() {
    let gw = TestGateway::start(GatewayConfig {
        push: Some(PushConfig::new(20.0)),
        ..GatewayConfig::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(gw.connect("/").await.unwrap());
    }
    let mut received: Vec<Vec<Push>> = Vec::new();
    for ws in &mut clients {
        let mut pushes: Vec<Push> = Vec::new();
        while pushes.len() < 5 {
            let push = parse_push(next(ws).await);
            let age = now_ms() - push.ts_ms;
            assert!(
                (-5000.0..5000.0).contains(&age),
                "ts {} is {age} ms away from now",
                push.ts_ms
            );
            assert_eq!(push.text.len(), PushConfig::DEFAULT_SIZE, "{}", push.text);
            if let Some(last) = pushes.last() {
                // Subscribed at the upgrade, a connection that keeps up gets every tick.
                assert_eq!(push.seq, last.seq + 1, "{pushes:?} then {push:?}");
                assert!(push.ts_ms >= last.ts_ms, "{pushes:?} then {push:?}");
            }
            pushes.push(push);
        }
        received.push(pushes);
    }
    // One feed: a tick every client saw is the same message for all of them.
    let common = received.iter().map(|p| p[0].seq).max().unwrap();
    let texts: Vec<&str> = received
        .iter()
        .filter_map(|p| p.iter().find(|push| push.seq == common))
        .map(|push| push.text.as_str())
        .collect();
    assert_eq!(texts.len(), 3, "every client saw tick {common}");
    assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");

    let counts = gw.stats.snapshot();
    assert!(counts.push_ticks >= 5, "{counts:?}");
    assert!(counts.pushes_sent >= 15, "{counts:?}");
    assert_eq!(counts.push_lagged, 0, "{counts:?}");
    gw.stop().await;
}

#[tokio::test]
async fn push_size_is_respected_and_echo_goes_on() {
    // 70,000 needs a 64-bit frame length and more than the 4 KiB read buffer on the client.
    for size in [100, 1000, 70_000] {
        let gw = TestGateway::start(push_config(50.0, size)).await;
        let mut ws = gw.connect("/").await.unwrap();
        for _ in 0..2 {
            let push = parse_push(next(&mut ws).await);
            assert_eq!(push.text.len(), size);
        }
        // Echo still answers the sender, between pushes.
        ws.send(Message::text("still echoing")).await.unwrap();
        loop {
            match next(&mut ws).await {
                Message::Text(t) if t.as_str() == "still echoing" => break,
                other => assert_eq!(parse_push(other).text.len(), size),
            }
        }
        assert!(gw.stats.snapshot().messages_echoed >= 1);
        gw.stop().await;
    }
}

#[tokio::test]
async fn push_size_below_the_json_minimum_sends_an_empty_pad() {
    let gw = TestGateway::start(push_config(50.0, 10)).await;
    let mut ws = gw.connect("/").await.unwrap();
    let push = parse_push(next(&mut ws).await);
    assert!(push.text.ends_with(r#","pad":""}"#), "{}", push.text);
    assert!(push.text.len() < 60, "{}", push.text);
    gw.stop().await;
}

#[tokio::test]
async fn broadcast_reaches_every_connection_including_the_sender() {
    let gw = TestGateway::start(GatewayConfig {
        broadcast: true,
        ..GatewayConfig::default()
    })
    .await;
    let mut a = gw.connect("/").await.unwrap();
    let mut b = gw.connect("/room").await.unwrap();
    let mut c = gw.connect("/room").await.unwrap();

    a.send(Message::text("from a")).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next(ws).await, Message::text("from a"));
    }
    let payload = vec![1u8, 2, 3];
    b.send(Message::binary(payload.clone())).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next(ws).await, Message::binary(payload.clone()));
    }
    // Pings are still answered by the connection itself, not broadcast.
    c.send(Message::Ping(b"hb".to_vec().into())).await.unwrap();
    assert_eq!(next(&mut c).await, Message::Pong(b"hb".to_vec().into()));

    let counts = gw.stats.snapshot();
    assert_eq!(counts.broadcast_received, 2, "{counts:?}");
    assert_eq!(counts.broadcast_delivered, 6, "{counts:?}");
    assert_eq!(counts.broadcast_lagged, 0, "{counts:?}");
    assert_eq!(counts.messages_echoed, 0, "{counts:?}");
    // Nothing else is on the way.
    assert_silent(&mut a, "a").await;
    gw.stop().await;
}

#[tokio::test]
async fn without_broadcast_only_the_sender_gets_its_echo() {
    let gw = TestGateway::start(GatewayConfig::default()).await;
    let mut a = gw.connect("/").await.unwrap();
    let mut b = gw.connect("/").await.unwrap();
    let mut c = gw.connect("/").await.unwrap();
    a.send(Message::text("just for a")).await.unwrap();
    assert_eq!(next(&mut a).await, Message::text("just for a"));
    // The echo to A has been written; anything for B or C would have been by now.
    assert_silent(&mut b, "b").await;
    assert_silent(&mut c, "c").await;
    let counts = gw.stats.snapshot();
    assert_eq!(
        (
            counts.messages_echoed,
            counts.broadcast_delivered,
            counts.push_ticks
        ),
        (1, 0, 0)
    );
    gw.stop().await;
}

/// `wsscale serve ARGS` as a child process, stopped with SIGTERM (and reaped) when dropped.
struct ServeProcess(std::process::Child);

impl ServeProcess {
    /// Start it and read its `listening on ws://…/` line; returns the URL too.
    fn start(args: &[&str]) -> (ServeProcess, String) {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsscale"))
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
        let process = ServeProcess(child);
        let url = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("expected `listening on URL`, got {line:?}"))
            .to_owned();
        (process, url)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_command_pushes_and_broadcasts() {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--push-rate",
        "20/s",
        "--push-size",
        "100",
        "--broadcast",
    ];
    let (_serve, url) = ServeProcess::start(&args);
    let (mut a, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(parse_push(next(&mut a).await).text.len(), 100);
    a.send(Message::text("hello room")).await.unwrap();
    loop {
        match next(&mut b).await {
            Message::Text(t) if t.as_str() == "hello room" => break,
            other => assert_eq!(parse_push(other).text.len(), 100),
        }
    }
}

#[tokio::test]
async fn serve_processes_forward_push_and_broadcast() {
    let mut args = vec!["--processes", "2"];
    args.extend([
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--push-rate",
        "20/s",
        "--push-size",
        "200",
        "--broadcast",
    ]);
    let (_serve, url) = ServeProcess::start(&args);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(parse_push(next(&mut ws).await).text.len(), 200);
    // Its own message comes back through its process's room.
    ws.send(Message::text("hello")).await.unwrap();
    loop {
        match next(&mut ws).await {
            Message::Text(t) if t.as_str() == "hello" => break,
            other => assert_eq!(parse_push(other).text.len(), 200),
        }
    }
}

#[test]
fn serve_refuses_bad_push_and_broadcast_flags() {
    for (args, says) in [
        (&["--push-rate", "0/s"][..], "above zero"),
        (&["--push-rate", "5000/s"][..], "1000/s"),
        (&["--push-rate", "fast"][..], "fast"),
        (&["--push-size", "100"][..], "--push-rate"),
        (&["--push-rate", "1/s", "--push-size", "1G"][..], "16 MiB"),
        (&["--broadcast", "--echo-delay", "5ms"][..], "--echo-delay"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsscale"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
