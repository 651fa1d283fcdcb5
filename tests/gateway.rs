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
