//! The coordinator's side of each agent connection: accept, TLS when the link has it,
//! WebSocket upgrade, admission checks that need no run state (protocol version, then the
//! mutual proof of the token — see [`super::auth`]), then a pump between the socket and
//! the coordinator's single event loop.
//!
//! A refused agent gets one `refused {reason}` frame and a close; nothing about it reaches
//! the event loop. The version is read from the raw JSON before the hello is parsed as a
//! whole, so an agent of another version gets a clear answer instead of a parse error.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use super::auth::{self, Role};
use super::coordinator::HELLO_TIMEOUT;
use super::link_tls::LinkStream;
use super::wire::{AgentMsg, CoordMsg, Hello, PROTOCOL_VERSION, peek_protocol};
use crate::plan::Secret;

/// What connection tasks tell the coordinator's loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// An authenticated hello; `out` sends to this agent.
    Joined {
        conn: u64,
        peer: SocketAddr,
        hello: Box<Hello>,
        out: mpsc::UnboundedSender<CoordMsg>,
    },
    Msg {
        conn: u64,
        msg: AgentMsg,
    },
    /// The connection ended (closed, reset, malformed message, or after `bye`).
    Gone {
        conn: u64,
        reason: String,
    },
}

/// Accept agent connections forever (the caller aborts the task).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    token: Secret,
    tls: Option<TlsAcceptor>,
) {
    let mut next_conn = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next_conn += 1;
                tokio::spawn(serve(
                    stream,
                    peer,
                    next_conn,
                    events.clone(),
                    token.clone(),
                    tls.clone(),
                ));
            }
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
    events: mpsc::UnboundedSender<Event>,
    token: Secret,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let stream = match tls {
        None => LinkStream::new(stream),
        Some(acceptor) => {
            match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => LinkStream::new(tls),
                // A plain ws:// agent, a scanner, or a client that distrusts our certificate.
                _ => return,
            }
        }
    };
    let Ok(Ok(mut ws)) =
        tokio::time::timeout(HELLO_TIMEOUT, tokio_tungstenite::accept_async(stream)).await
    else {
        return;
    };
    let Ok(Some(text)) = tokio::time::timeout(HELLO_TIMEOUT, next_text(&mut ws)).await else {
        return;
    };
    match peek_protocol(&text) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        other => {
            let theirs = other.map_or_else(|| "none".to_string(), |v| v.to_string());
            refuse(
                &mut ws,
                format!(
                    "protocol version mismatch: this coordinator (wsscale {}) speaks control \
                     protocol {PROTOCOL_VERSION}, the agent sent {theirs}; run the same wsscale \
                     version on the coordinator and every agent",
                    env!("CARGO_PKG_VERSION")
                ),
            )
            .await;
            return;
        }
    }
    let hello = match AgentMsg::parse(&text) {
        Ok(AgentMsg::Hello(h)) => h,
        Ok(_) => {
            refuse(&mut ws, "the first message must be a hello".into()).await;
            return;
        }
        Err(e) => {
            refuse(&mut ws, format!("malformed hello: {e}")).await;
            return;
        }
    };
    if !authenticate(&mut ws, &token, &hello).await {
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    if events
        .send(Event::Joined {
            conn,
            peer,
            hello: Box::new(hello),
            out: out_tx,
        })
        .is_err()
    {
        return;
    }
    let reason = loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(msg) => {
                    let end = matches!(msg, CoordMsg::Refused { .. } | CoordMsg::Bye);
                    if let Err(e) = ws.send(Message::text(msg.to_text())).await {
                        break format!("send failed: {e}");
                    }
                    if end {
                        let _ = ws.close(None).await;
                        break "closed by the coordinator".to_string();
                    }
                }
                None => {
                    let _ = ws.close(None).await;
                    break "closed by the coordinator".to_string();
                }
            },
            inc = ws.next() => match inc {
                Some(Ok(Message::Text(t))) => match AgentMsg::parse(t.as_str()) {
                    Ok(msg) => {
                        if events.send(Event::Msg { conn, msg }).is_err() {
                            break "coordinator gone".to_string();
                        }
                    }
                    Err(e) => break format!("malformed message: {e}"),
                },
                Some(Ok(Message::Close(_))) | None => break "closed by the agent".to_string(),
                Some(Err(e)) => break format!("{e}"),
                Some(Ok(_)) => {}
            },
        }
    };
    let _ = events.send(Event::Gone { conn, reason });
}

/// The next text frame (`None` on close or error).
pub(crate) async fn next_text<S>(ws: &mut WebSocketStream<S>) -> Option<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.as_str().to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Prove the token to the agent, then check its proof (see [`super::auth`]). `false`: the
/// agent was refused (or went away) and the connection is done.
async fn authenticate(ws: &mut WebSocketStream<LinkStream>, token: &Secret, hello: &Hello) -> bool {
    if !auth::well_formed(&hello.nonce) {
        refuse(
            ws,
            "malformed hello: the nonce is not 32 bytes of hex".into(),
        )
        .await;
        return false;
    }
    let nonce = auth::nonce();
    let challenge = CoordMsg::Challenge {
        protocol: PROTOCOL_VERSION,
        proof: auth::prove(&token.0, Role::Coordinator, &hello.nonce, &nonce),
        nonce: nonce.clone(),
    };
    if ws.send(Message::text(challenge.to_text())).await.is_err() {
        return false;
    }
    let Ok(Some(text)) = tokio::time::timeout(HELLO_TIMEOUT, next_text(ws)).await else {
        return false;
    };
    let proven = match AgentMsg::parse(&text) {
        Ok(AgentMsg::Proof { proof }) => {
            auth::verify(&token.0, Role::Agent, &nonce, &hello.nonce, &proof)
        }
        _ => false,
    };
    if !proven {
        refuse(
            ws,
            "wrong token: the agent could not prove it holds the coordinator's token (check \
             that both read the same --token-file)"
                .into(),
        )
        .await;
    }
    proven
}

async fn refuse(ws: &mut WebSocketStream<LinkStream>, reason: String) {
    let _ = ws
        .send(Message::text(CoordMsg::Refused { reason }.to_text()))
        .await;
    let _ = ws.close(None).await;
}
