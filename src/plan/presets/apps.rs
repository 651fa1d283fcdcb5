//! The application-framework presets: GraphQL over WebSocket (both protocols), SignalR,
//! Phoenix channels, Action Cable and Centrifugo — tables of the same primitives as the
//! broker presets in the parent module.

use std::time::Duration;

use super::*;

/// `s` as a JSON string literal (quoted and escaped). `{conn}` and the other placeholders
/// pass through unchanged.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A `Send` step of text that is already JSON as it goes on the wire: its backslashes (JSON
/// escapes such as `\"` and `\n`) are doubled so the payload notation keeps them; `{conn}`
/// stays a placeholder.
fn send_json(s: &str) -> Result<OpenStep, String> {
    Ok(OpenStep::Send(template(&s.replace('\\', "\\\\"))?))
}

/// `s` parsed as JSON, with `{conn}` filled in first (it is a placeholder).
fn json_of(what: &str, s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(&s.replace("{conn}", "0"))
        .map_err(|e| format!("{what} {s:?} is not valid JSON ({e})"))
}

/// GraphQL over WebSocket.
///
/// `graphql-ws` is the graphql-transport-ws protocol (subprotocol `graphql-transport-ws`):
/// `connection_init` with `--init-payload` (default `{}`), wait for `connection_ack`; a server
/// `ping` is answered `pong`, and with `--heartbeat-interval` the client pings too and times
/// the `pong`; each `--subscribe QUERY` is a `subscribe` operation (ids `1`, `2`, …) whose
/// `next` results are pushes.
///
/// `graphql-ws-legacy` is subscriptions-transport-ws (subprotocol `graphql-ws`): the same
/// init and ack, `ka` keep-alives need no answer, operations are `start`.
///
/// Timed messages are an operation (`--publish-topic DOCUMENT`, id `m{seq}`) with the marker
/// in its `$marker` variable: whatever result carries the marker back closes the sample (the
/// operation's own, or a subscription's push when the operation publishes it).
pub(super) fn graphql(o: &PresetOptions, legacy: bool) -> Result<Preset, String> {
    let init = o.init_payload.as_deref().unwrap_or("{}");
    if !matches!(
        json_of("--init-payload", init)?,
        serde_json::Value::Object(_) | serde_json::Value::Null
    ) {
        return Err(format!(
            "--init-payload {init:?}: the connection_init payload is a JSON object, e.g. \
             '{{\"authToken\":\"…\"}}'"
        ));
    }
    let op = if legacy { "start" } else { "subscribe" };
    let mut open = vec![
        send_json(&format!(
            "{{\"type\":\"connection_init\",\"payload\":{init}}}"
        ))?,
        OpenStep::Expect(pattern(r#"re:"type"\s*:\s*"connection_ack""#)),
    ];
    for (i, query) in o.subscribe.iter().enumerate() {
        open.push(send_json(&format!(
            "{{\"id\":\"{}\",\"type\":\"{op}\",\"payload\":{{\"query\":{}}}}}",
            i + 1,
            json_str(query)
        ))?);
    }
    if o.messages && !o.own_message_text && o.publish_topic.is_none() {
        return Err(
            "graphql-ws has no echo of its own: timed messages are a GraphQL operation that \
             returns or publishes its $marker variable; give it with --publish-topic, e.g. \
             'mutation($marker: String!) { send(text: $marker) }' (or write the whole frame \
             with --message-text)"
                .into(),
        );
    }
    let message_text = o.publish_topic.as_deref().map(|doc| {
        format!(
            "{{\"id\":\"m{{seq}}\",\"type\":\"{op}\",\"payload\":{{\"query\":{},\
             \"variables\":{{\"marker\":\"{{marker}}{{pad}}\"}}}}}}",
            json_str(doc)
        )
    });
    let (subprotocol, replies, heartbeat) = if legacy {
        ("graphql-ws", Vec::new(), None)
    } else {
        (
            "graphql-transport-ws",
            vec![reply(
                r#"re:"type"\s*:\s*"ping""#,
                "{\"type\":\"pong\"}",
                true,
            )],
            o.heartbeat.map(|hb| {
                keepalive(
                    b"{\"type\":\"ping\"}",
                    false,
                    Some(b"\"type\":\"pong\""),
                    hb,
                )
            }),
        )
    };
    Ok(Preset {
        session: Session {
            open,
            replies,
            ..Default::default()
        },
        subprotocol: Some(subprotocol.into()),
        heartbeat,
        message_text,
        ..Default::default()
    })
}

/// ASP.NET Core SignalR, JSON hub protocol, connecting straight to the hub's WebSocket (the
/// clients' `skipNegotiation`; no `/negotiate` request): the handshake
/// `{"protocol":"json","version":1}␞`, wait for `{}␞`; server pings `{"type":6}␞` answered in
/// kind; a client ping every `--heartbeat-interval` (default 15 s, the servers' keep-alive;
/// a server drops a client silent for its client timeout, 30 s); timed messages invoke
/// `--method` (default `Echo`) with the marker as the one argument, and the call back that
/// carries it closes the sample.
pub(super) fn signalr(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(15));
    let method = o.method.as_deref().unwrap_or("Echo");
    if method.is_empty() {
        return Err("--method: give the hub method that timed messages invoke, e.g. Echo".into());
    }
    Ok(Preset {
        session: Session {
            open: vec![
                send("{\"protocol\":\"json\",\"version\":1}\\x1e"),
                OpenStep::Expect(pattern("^{}\\x1e")),
            ],
            replies: vec![reply(
                r#"re:(^|\x1e)\{"type":6\}\x1e"#,
                "{\"type\":6}\\x1e",
                true,
            )],
            ..Default::default()
        },
        heartbeat: Some(keepalive(b"{\"type\":6}\x1e", false, None, hb)),
        message_text: Some(format!(
            "{{\"type\":1,\"target\":{},\"arguments\":[\"{{marker}}{{pad}}\"]}}\u{1e}",
            json_str(method)
        )),
        ..Default::default()
    })
}

/// Phoenix channels, serializer v2 (`[join_ref, ref, topic, event, payload]`; the URL path
/// becomes `/socket/websocket?vsn=2.0.0` when it is `/`): `phx_join` per `--subscribe TOPIC`
/// (join refs `1`, `2`, …), each waiting for its `phx_reply` with status ok; a heartbeat
/// every `--heartbeat-interval` (default 30 s; the server closes an idle socket after 60 s)
/// whose reply is timed; timed messages are `--event` (default `message`) pushes to
/// `--publish-topic` (default the first topic; joined too when it is not one), and the
/// broadcast that carries the marker back closes the sample.
pub(super) fn phoenix(o: &PresetOptions) -> Result<Preset, String> {
    let hb = o.heartbeat.unwrap_or(Duration::from_secs(30));
    let mut topics = subscriptions(o, "wsscale:{conn}");
    let publish = o.publish_topic.clone().or_else(|| topics.first().cloned());
    if let Some(p) = &publish
        && !topics.contains(p)
    {
        topics.push(p.clone());
    }
    let event = o.event.as_deref().unwrap_or("message");
    let mut open = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let r = i + 1;
        open.push(send_json(&format!(
            "[\"{r}\",\"{r}\",{},\"phx_join\",{{}}]",
            json_str(topic)
        ))?);
        open.push(OpenStep::Expect(pattern(&format!(
            r#"re:^\["{r}","{r}",.*"phx_reply",\{{.*"status":"ok""#
        ))));
    }
    let message_text = publish.map(|p| {
        let r = topics.iter().position(|t| *t == p).unwrap_or(0) + 1;
        format!(
            "[\"{r}\",\"m\",{},{},{{\"body\":\"{{marker}}{{pad}}\"}}]",
            json_str(&p),
            json_str(event)
        )
    });
    Ok(Preset {
        session: Session {
            open,
            ..Default::default()
        },
        default_path: Some("/socket/websocket?vsn=2.0.0".into()),
        heartbeat: Some(keepalive(
            b"[null,\"hb\",\"phoenix\",\"heartbeat\",{}]",
            false,
            Some(b"\"hb\",\"phoenix\",\"phx_reply\""),
            hb,
        )),
        message_text,
        ..Default::default()
    })
}

/// Rails Action Cable (subprotocol `actioncable-v1-json`): wait for the `welcome`; per
/// `--subscribe IDENTIFIER` (a JSON object naming the channel, e.g.
/// `{"channel":"ChatChannel","room":"1"}`) a `subscribe` command, waiting for its
/// `confirm_subscription`; the server's `ping`s every 3 s need no answer. Timed messages are
/// `message` commands to `--publish-topic` (default the first identifier; subscribed too when
/// it is not one) with data `{"body":"<marker>"}`, received by the channel; the broadcast that
/// carries the marker back closes the sample.
pub(super) fn actioncable(o: &PresetOptions) -> Result<Preset, String> {
    let mut ids = o.subscribe.clone();
    let publish = o.publish_topic.clone().or_else(|| ids.first().cloned());
    if let Some(p) = &publish
        && !ids.contains(p)
    {
        ids.push(p.clone());
    }
    if o.messages && !o.own_message_text && publish.is_none() {
        return Err(
            "Action Cable timed messages go to a channel: give its identifier with \
             --subscribe, e.g. --subscribe '{\"channel\":\"EchoChannel\"}'"
                .into(),
        );
    }
    let mut open = vec![OpenStep::Expect(pattern("*\"welcome\""))];
    for id in &ids {
        match json_of("--subscribe", id) {
            Ok(serde_json::Value::Object(m)) if m.contains_key("channel") => {}
            _ => {
                return Err(format!(
                    "--subscribe {id:?}: an Action Cable identifier is a JSON object naming the \
                     channel, e.g. '{{\"channel\":\"ChatChannel\",\"room\":\"1\"}}'"
                ));
            }
        }
        open.push(send_json(&format!(
            "{{\"command\":\"subscribe\",\"identifier\":{}}}",
            json_str(id)
        ))?);
        open.push(OpenStep::Expect(pattern("*\"confirm_subscription\"")));
    }
    let message_text = publish.map(|id| {
        format!(
            "{{\"command\":\"message\",\"identifier\":{},\"data\":{}}}",
            json_str(&id),
            json_str("{\"body\":\"{marker}{pad}\"}")
        )
    });
    Ok(Preset {
        session: Session {
            open,
            ..Default::default()
        },
        subprotocol: Some("actioncable-v1-json".into()),
        message_text,
        ..Default::default()
    })
}

/// Centrifugo v4+ (client protocol v2, JSON; the URL path becomes `/connection/websocket`
/// when it is `/`): `connect` with `--token` as the connection token (empty without one),
/// wait for the connect result; server pings `{}` answered `{}`; `subscribe` per `--subscribe`
/// channel (ids 2, 3, …), each waiting for its result; timed messages are `publish` commands
/// (ids `1{seq}`: 10, 11, …) to `--publish-topic` (default the first channel) with data
/// `{"m":"<marker>"}`, and the publication pushed back closes the sample.
pub(super) fn centrifugo(o: &PresetOptions) -> Result<Preset, String> {
    let token = o.token.as_deref().unwrap_or("");
    let mut open = vec![
        send_json(&format!(
            "{{\"id\":1,\"connect\":{{\"token\":{}}}}}",
            json_str(token)
        ))?,
        OpenStep::Expect(pattern("*\"connect\":{")),
    ];
    let subs = subscriptions(o, "wsscale-{conn}");
    for (i, channel) in subs.iter().enumerate() {
        let id = i + 2;
        open.push(send_json(&format!(
            "{{\"id\":{id},\"subscribe\":{{\"channel\":{}}}}}",
            json_str(channel)
        ))?);
        open.push(OpenStep::Expect(pattern(&format!(
            r#"re:"id":\s*{id}\s*,\s*"subscribe""#
        ))));
    }
    let publish = o.publish_topic.clone().or_else(|| subs.first().cloned());
    Ok(Preset {
        session: Session {
            open,
            // Replies may be batched one per line in a frame.
            replies: vec![reply(r"re:(^|\n)\{\}(\n|$)", "{}", true)],
            ..Default::default()
        },
        default_path: Some("/connection/websocket".into()),
        message_text: publish.map(|ch| {
            format!(
                "{{\"id\":1{{seq}},\"publish\":{{\"channel\":{},\"data\":{{\"m\":\"{{marker}}{{pad}}\"}}}}}}",
                json_str(&ch)
            )
        }),
        ..Default::default()
    })
}
