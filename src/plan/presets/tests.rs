//! Unit tests of the preset tables.
use super::*;

fn opts() -> PresetOptions {
    PresetOptions {
        messages: true,
        ..Default::default()
    }
}

#[test]
fn socketio_table() {
    let p = preset("socketio", &opts()).unwrap();
    assert_eq!(p.session.protocol.as_deref(), Some("socketio"));
    assert!(matches!(&p.session.open[0], OpenStep::Expect(x) if x.matches(b"0{\"sid\":\"a\"}")));
    assert!(p.session.replies[0].pattern.matches(b"2"));
    assert_eq!(
        p.message_text.as_deref(),
        Some("42[\"message\",\"{marker}{pad}\"]")
    );
    let mut o = opts();
    o.namespace = Some("/chat".into());
    o.event = Some("tick".into());
    let p = preset("socketio", &o).unwrap();
    assert_eq!(
        p.message_text.as_deref(),
        Some("42/chat,[\"tick\",\"{marker}{pad}\"]")
    );
    assert!(
        preset(
            "socketio",
            &PresetOptions {
                namespace: Some("chat".into()),
                ..opts()
            }
        )
        .is_err()
    );
}

#[test]
fn mqtt_table() {
    let p = preset("mqtt", &opts()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(p.session.open[0].render(7, &mut buf), Some(true));
    assert!(buf.windows(9).any(|w| w == b"wsscale-7"));
    assert!(matches!(&p.session.open[1], OpenStep::Expect(x) if x.matches(&[0x20, 2, 0, 0])));
    assert!(matches!(p.session.envelope, Envelope::MqttPublish { .. }));
    assert_eq!(p.subprotocol.as_deref(), Some("mqtt"));
}

#[test]
fn stomp_and_nats_tables() {
    let p = preset("stomp", &opts()).unwrap();
    let mut buf = Vec::new();
    p.session.open[0].render(1, &mut buf);
    assert!(buf.starts_with(b"CONNECT\n") && buf.ends_with(b"\n\n\0"));
    assert!(
        p.message_text
            .unwrap()
            .contains("destination:/topic/wsscale.{conn}")
    );
    let p = preset("nats", &opts()).unwrap();
    assert!(p.session.replies[0].pattern.matches(b"PING\r\n"));
    assert!(p.session.replies[0].pattern.matches(b"+OK\r\nPING\r\n"));
    assert!(
        !p.session.replies[0]
            .pattern
            .matches(b"MSG a 1 4\r\nxPING\r\n")
    );
    assert!(preset("nope", &opts()).unwrap_err().contains("socketio"));
}

/// The frame open step `i` sends for connection 7, as text.
fn sent(p: &Preset, i: usize) -> String {
    let mut buf = Vec::new();
    assert_eq!(
        p.session.open[i].render(7, &mut buf),
        Some(false),
        "step {i}"
    );
    String::from_utf8(buf).unwrap()
}

fn expects(p: &Preset, i: usize, frame: &str) -> bool {
    matches!(&p.session.open[i], OpenStep::Expect(x) if x.matches(frame.as_bytes()))
}

/// The reply the preset's rules give to `frame` (None: no rule matches).
fn answer(p: &Preset, frame: &str) -> Option<(String, bool)> {
    let mut g = Vec::new();
    let r = p
        .session
        .replies
        .iter()
        .find(|r| r.pattern.captures(frame.as_bytes(), &mut g))?;
    let mut out = Vec::new();
    r.response.render(7, &g, &mut out);
    Some((String::from_utf8(out).unwrap(), r.server_ping))
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn graphql_ws_table() {
    let mut o = opts();
    o.init_payload = Some("{\"authToken\":\"t-{conn}\"}".into());
    o.subscribe = vec!["subscription {\n  messages(room: \"a\\\\b\")\n}".into()];
    o.publish_topic = Some("mutation($marker: String!) { send(text: $marker) }".into());
    o.heartbeat = Some(Duration::from_secs(5));
    let p = preset("graphql-ws", &o).unwrap();
    assert_eq!(p.subprotocol.as_deref(), Some("graphql-transport-ws"));
    assert_eq!(
        json(&sent(&p, 0)),
        json("{\"type\":\"connection_init\",\"payload\":{\"authToken\":\"t-7\"}}")
    );
    assert!(expects(&p, 1, "{\"type\":\"connection_ack\"}"));
    assert!(expects(
        &p,
        1,
        "{\"type\": \"connection_ack\", \"payload\": {}}"
    ));
    let sub = json(&sent(&p, 2));
    assert_eq!(sub["id"], "1");
    assert_eq!(sub["type"], "subscribe");
    assert_eq!(sub["payload"]["query"], o.subscribe[0].as_str(), "escaped");
    assert_eq!(
        answer(&p, "{\"type\":\"ping\"}"),
        Some(("{\"type\":\"pong\"}".into(), true))
    );
    assert_eq!(answer(&p, "{\"id\":\"1\",\"type\":\"next\"}"), None);
    let hb = p.heartbeat.as_ref().unwrap();
    assert_eq!(hb.text, b"{\"type\":\"ping\"}");
    assert!(hb.expect.is_some());
    let m = p.message_text.unwrap();
    let m = json(&m.replace("{marker}{pad}", "~x~").replace("{seq}", "3"));
    assert_eq!(m["id"], "m3");
    assert_eq!(m["type"], "subscribe");
    assert_eq!(m["payload"]["variables"]["marker"], "~x~");
    // Timed messages need an operation; --init-payload must be an object.
    assert!(
        preset("graphql-ws", &opts())
            .unwrap_err()
            .contains("--publish-topic")
    );
    let own = PresetOptions {
        own_message_text: true,
        ..opts()
    };
    assert!(preset("graphql-ws", &own).is_ok());
    o.init_payload = Some("[1]".into());
    assert!(preset("graphql-ws", &o).unwrap_err().contains("object"));
    o.init_payload = Some("{".into());
    assert!(
        preset("graphql-ws", &o)
            .unwrap_err()
            .contains("not valid JSON")
    );
}

#[test]
fn graphql_ws_legacy_table() {
    let o = PresetOptions {
        subscribe: vec!["subscription { ticks }".into()],
        publish_topic: Some("query($marker: String!) { echo(m: $marker) }".into()),
        heartbeat: Some(Duration::from_secs(5)),
        ..opts()
    };
    let p = preset("graphql-ws-legacy", &o).unwrap();
    assert_eq!(p.subprotocol.as_deref(), Some("graphql-ws"));
    assert_eq!(json(&sent(&p, 0))["payload"], json("{}"));
    assert_eq!(json(&sent(&p, 2))["type"], "start");
    assert!(p.session.replies.is_empty(), "ka needs no answer");
    assert!(
        p.heartbeat.is_none(),
        "the legacy protocol has no client ping"
    );
    assert!(p.message_text.unwrap().contains("\"type\":\"start\""));
}

#[test]
fn signalr_table() {
    let p = preset("signalr", &opts()).unwrap();
    assert_eq!(sent(&p, 0), "{\"protocol\":\"json\",\"version\":1}\u{1e}");
    assert!(expects(&p, 1, "{}\u{1e}"));
    assert!(!expects(&p, 1, "{\"error\":\"nope\"}\u{1e}"));
    let pong = Some(("{\"type\":6}\u{1e}".to_string(), true));
    assert_eq!(answer(&p, "{\"type\":6}\u{1e}"), pong);
    assert_eq!(
        answer(
            &p,
            "{\"type\":1,\"target\":\"x\",\"arguments\":[]}\u{1e}{\"type\":6}\u{1e}"
        ),
        pong,
        "a ping batched after another record"
    );
    assert_eq!(
        answer(
            &p,
            "{\"type\":1,\"arguments\":[\"{\\\"type\\\":6}\"]}\u{1e}"
        ),
        None
    );
    let hb = p.heartbeat.as_ref().unwrap();
    assert_eq!(
        (hb.text.as_slice(), hb.interval),
        (&b"{\"type\":6}\x1e"[..], Duration::from_secs(15))
    );
    assert_eq!(
        p.message_text.as_deref(),
        Some("{\"type\":1,\"target\":\"Echo\",\"arguments\":[\"{marker}{pad}\"]}\u{1e}")
    );
    let p = preset(
        "signalr",
        &PresetOptions {
            method: Some("Send\"It".into()),
            heartbeat: Some(Duration::from_secs(2)),
            ..opts()
        },
    )
    .unwrap();
    assert!(
        p.message_text
            .unwrap()
            .contains("\"target\":\"Send\\\"It\"")
    );
    assert_eq!(p.heartbeat.unwrap().interval, Duration::from_secs(2));
    // --method is SignalR's only.
    let o = PresetOptions {
        method: Some("Echo".into()),
        ..opts()
    };
    assert!(preset("phoenix", &o).unwrap_err().contains("signalr"));
}

#[test]
fn phoenix_table() {
    let o = PresetOptions {
        subscribe: vec!["room:lobby".into(), "user:{conn}".into()],
        publish_topic: Some("room:echo".into()),
        ..opts()
    };
    let p = preset("phoenix", &o).unwrap();
    assert_eq!(
        p.default_path.as_deref(),
        Some("/socket/websocket?vsn=2.0.0")
    );
    assert_eq!(sent(&p, 0), "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]");
    assert!(expects(
        &p,
        1,
        "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"
    ));
    assert!(!expects(
        &p,
        1,
        "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched topic\"},\"status\":\"error\"}]"
    ));
    assert!(!expects(
        &p,
        3,
        "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"
    ));
    assert_eq!(sent(&p, 2), "[\"2\",\"2\",\"user:7\",\"phx_join\",{}]");
    // The publish topic is joined too, and messages carry its join ref.
    assert_eq!(sent(&p, 4), "[\"3\",\"3\",\"room:echo\",\"phx_join\",{}]");
    assert_eq!(
        p.message_text.as_deref(),
        Some("[\"3\",\"m\",\"room:echo\",\"message\",{\"body\":\"{marker}{pad}\"}]")
    );
    let hb = p.heartbeat.unwrap();
    assert_eq!(hb.text, b"[null,\"hb\",\"phoenix\",\"heartbeat\",{}]");
    assert_eq!(hb.interval, Duration::from_secs(30));
    let reply = b"[null,\"hb\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";
    let e = hb.expect.unwrap();
    assert!(reply.windows(e.len()).any(|w| w == e));
    // Default: a topic per connection, timed messages to it.
    let p = preset("phoenix", &opts()).unwrap();
    assert_eq!(sent(&p, 0), "[\"1\",\"1\",\"wsscale:7\",\"phx_join\",{}]");
    assert!(
        p.message_text
            .unwrap()
            .starts_with("[\"1\",\"m\",\"wsscale:{conn}\"")
    );
}

#[test]
fn actioncable_table() {
    let id = "{\"channel\":\"EchoChannel\",\"room\":\"r{conn}\"}";
    let o = PresetOptions {
        subscribe: vec![id.into()],
        ..opts()
    };
    let p = preset("actioncable", &o).unwrap();
    assert_eq!(p.subprotocol.as_deref(), Some("actioncable-v1-json"));
    assert!(expects(&p, 0, "{\"type\":\"welcome\"}"));
    let sub = json(&sent(&p, 1));
    assert_eq!(sub["command"], "subscribe");
    assert_eq!(
        sub["identifier"],
        "{\"channel\":\"EchoChannel\",\"room\":\"r7\"}"
    );
    assert!(expects(
        &p,
        2,
        "{\"identifier\":\"{\\\"channel\\\":\\\"EchoChannel\\\"}\",\"type\":\"confirm_subscription\"}"
    ));
    assert!(p.session.replies.is_empty() && p.heartbeat.is_none());
    // Nested escaping: the data is a JSON string holding a JSON object.
    let m = p.message_text.unwrap().replace("{marker}{pad}", "~x~");
    let m = json(&m);
    assert_eq!(m["command"], "message");
    assert_eq!(m["identifier"], id);
    assert_eq!(json(m["data"].as_str().unwrap())["body"], "~x~");
    // Timed messages need a channel; identifiers are JSON objects naming one.
    assert!(
        preset("actioncable", &opts())
            .unwrap_err()
            .contains("--subscribe")
    );
    let bad = PresetOptions {
        subscribe: vec!["ChatChannel".into()],
        ..opts()
    };
    assert!(preset("actioncable", &bad).is_err());
    let bad = PresetOptions {
        subscribe: vec!["{\"room\":1}".into()],
        ..opts()
    };
    assert!(preset("actioncable", &bad).unwrap_err().contains("channel"));
}

#[test]
fn centrifugo_table() {
    let o = PresetOptions {
        token: Some("tok\"en".into()),
        subscribe: vec!["news".into(), "chat:{conn}".into()],
        ..opts()
    };
    let p = preset("centrifugo", &o).unwrap();
    assert_eq!(p.default_path.as_deref(), Some("/connection/websocket"));
    assert_eq!(p.subprotocol, None);
    assert_eq!(
        json(&sent(&p, 0)),
        json("{\"id\":1,\"connect\":{\"token\":\"tok\\\"en\"}}")
    );
    assert!(expects(
        &p,
        1,
        "{\"id\":1,\"connect\":{\"client\":\"c\",\"version\":\"6.0.0\",\"ping\":25,\"pong\":true}}"
    ));
    assert!(!expects(&p, 1, "{\"id\":1,\"error\":{\"code\":101}}"));
    assert_eq!(
        sent(&p, 2),
        "{\"id\":2,\"subscribe\":{\"channel\":\"news\"}}"
    );
    assert!(expects(&p, 3, "{\"id\":2,\"subscribe\":{}}"));
    assert!(!expects(&p, 3, "{\"id\":2,\"error\":{\"code\":103}}"));
    assert_eq!(
        sent(&p, 4),
        "{\"id\":3,\"subscribe\":{\"channel\":\"chat:7\"}}"
    );
    assert!(expects(&p, 5, "{\"id\":3,\"subscribe\":{}}"));
    assert_eq!(answer(&p, "{}"), Some(("{}".into(), true)));
    assert_eq!(answer(&p, "{\"push\":{}}\n{}"), Some(("{}".into(), true)));
    assert_eq!(answer(&p, "{\"id\":2,\"subscribe\":{}}"), None);
    let m = p.message_text.unwrap();
    let m = json(&m.replace("{marker}{pad}", "~x~").replace("{seq}", "0"));
    assert_eq!(m["id"], 10);
    assert_eq!(m["publish"]["channel"], "news");
    assert_eq!(m["publish"]["data"]["m"], "~x~");
    // No token: an empty one (anonymous or insecure mode).
    let p = preset("centrifugo", &opts()).unwrap();
    assert_eq!(sent(&p, 0), "{\"id\":1,\"connect\":{\"token\":\"\"}}");
    assert_eq!(
        sent(&p, 2),
        "{\"id\":2,\"subscribe\":{\"channel\":\"wsscale-7\"}}"
    );
}

#[test]
fn names_are_the_presets() {
    for name in NAMES {
        let o = PresetOptions {
            subscribe: vec!["{\"channel\":\"C\"}".into()],
            publish_topic: Some("{\"channel\":\"C\"}".into()),
            ..opts()
        };
        let p = preset(name, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.session.protocol.as_deref(), Some(*name));
    }
    let e = preset("nope", &opts()).unwrap_err();
    assert!(
        e.contains("centrifugo") && e.contains("graphql-ws-legacy"),
        "{e}"
    );
    let o = PresetOptions {
        init_payload: Some("{}".into()),
        ..opts()
    };
    assert!(preset("signalr", &o).unwrap_err().contains("graphql-ws"));
}
