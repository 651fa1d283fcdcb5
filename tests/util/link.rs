//! Both halves of the control link's mutual proof, for hand-written fake agents and
//! coordinators (see `wsscale::cluster::auth`).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use wsscale::cluster::auth::{self, Role};
use wsscale::cluster::wire::{AgentMsg, CoordMsg, PROTOCOL_VERSION};

/// The next text frame (panics on close: a fake expects its peer to go on).
pub async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A fake coordinator's half, after it read `hello`: prove `token`, check the agent's proof.
pub async fn coordinator_side<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    token: &str,
    hello: &AgentMsg,
) {
    let AgentMsg::Hello(h) = hello else {
        panic!("expected hello, got {hello:?}")
    };
    let nonce = auth::nonce();
    let challenge = CoordMsg::Challenge {
        protocol: PROTOCOL_VERSION,
        proof: auth::prove(token, Role::Coordinator, &h.nonce, &nonce),
        nonce: nonce.clone(),
    };
    ws.send(Message::text(challenge.to_text())).await.unwrap();
    match AgentMsg::parse(&next_text(ws).await).unwrap() {
        AgentMsg::Proof { proof } => {
            assert!(auth::verify(token, Role::Agent, &nonce, &h.nonce, &proof));
        }
        other => panic!("expected proof, got {other:?}"),
    }
}

/// A fake agent's half: send `hello` (a JSON object; its nonce is set here), check the
/// coordinator's proof of `token`, prove it back. Returns the coordinator's next message
/// (`welcome` or `refused`).
pub async fn agent_side<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    token: &str,
    mut hello: serde_json::Value,
) -> CoordMsg {
    let nonce = auth::nonce();
    hello["nonce"] = nonce.clone().into();
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let (theirs, proof) = match CoordMsg::parse(&next_text(ws).await).unwrap() {
        CoordMsg::Challenge { nonce, proof, .. } => (nonce, proof),
        other => return other,
    };
    assert!(auth::verify(
        token,
        Role::Coordinator,
        &nonce,
        &theirs,
        &proof
    ));
    let proof = auth::prove(token, Role::Agent, &theirs, &nonce);
    ws.send(Message::text(AgentMsg::Proof { proof }.to_text()))
        .await
        .unwrap();
    CoordMsg::parse(&next_text(ws).await).unwrap()
}
