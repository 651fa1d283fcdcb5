//! `--protocol`, `--send/--expect`, `--reply` and the preset options → the plan's
//! [`Session`](crate::plan::session::Session), with what a preset sets elsewhere in the plan:
//! the subprotocol (unless `--subprotocol`), the Socket.IO path (when the URL's path is `/`),
//! the keep-alive (unless `--heartbeat-text`) and the timed-message envelope (unless
//! `--message-text`). What the user gives explicitly always wins over the preset.

use std::time::Duration;

use super::super::error::{Origin, PlanError};
use super::super::payload::{Pattern, parse_payload};
use super::super::presets::{PresetOptions, preset};
use super::super::session::{OpenStep, Reply, Session};
use super::super::{HandshakeSpec, OpenArg, Overrides, Target, Traffic};

/// The flags with the profile's session keys filled in where no flag was given (a flag
/// replaces the profile's value or list).
pub(super) fn with_profile(
    args: &Overrides,
    p: &super::super::profile::Profile,
) -> Result<Overrides, PlanError> {
    let mut a = args.clone();
    let one = |flag: &Option<String>, prof: &Option<super::super::profile::Located<String>>| {
        flag.clone()
            .or_else(|| prof.as_ref().map(|l| l.value.clone()))
    };
    let many = |flag: &Vec<String>, prof: &Vec<super::super::profile::Located<String>>| {
        if flag.is_empty() {
            prof.iter().map(|l| l.value.clone()).collect()
        } else {
            flag.clone()
        }
    };
    a.protocol = one(&args.protocol, &p.protocol);
    a.publish_topic = one(&args.publish_topic, &p.publish_topic);
    a.namespace = one(&args.namespace, &p.namespace);
    a.event = one(&args.event, &p.event);
    a.subscribe = many(&args.subscribe, &p.subscribe);
    a.replies = many(&args.replies, &p.replies);
    if args.open.is_empty() {
        for l in &p.open {
            a.open.push(if let Some(s) = l.value.strip_prefix("send:") {
                OpenArg::Send(s.to_string())
            } else if let Some(e) = l.value.strip_prefix("expect:") {
                OpenArg::Expect(e.to_string())
            } else {
                return Err(l.origin.invalid(format!(
                    "{:?}: each step of 'open' starts with send: or expect: (e.g. \
                     \"send:40\", \"expect:^40\")",
                    l.value
                )));
            });
        }
    }
    Ok(a)
}

/// Fill `traffic.session` (and what a preset sets) from the flags.
pub(super) fn session(
    args: &Overrides,
    targets: &mut [Target],
    handshake: &mut HandshakeSpec,
    traffic: &mut Traffic,
) -> Result<(), PlanError> {
    let flag = |f: &'static str| Origin::Flag(f);
    let mut session = Session::default();
    if let Some(name) = &args.protocol {
        let login = match &args.stomp_login {
            None => None,
            Some(l) => Some(
                l.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .ok_or_else(|| {
                        flag("--stomp-login").invalid("write USER:PASS, e.g. guest:guest")
                    })?,
            ),
        };
        let opts = PresetOptions {
            namespace: args.namespace.clone(),
            event: args.event.clone(),
            subscribe: args.subscribe.clone(),
            publish_topic: args.publish_topic.clone(),
            heartbeat: args.heartbeat_interval.filter(|d| !d.is_zero()),
            messages: traffic.message.is_some(),
            login,
            own_message_text: traffic.message.as_ref().is_some_and(|m| m.text.is_some()),
            init_payload: args.init_payload.clone(),
            method: args.method.clone(),
            // Centrifugo carries the static token in its connect command.
            token: match &handshake.auth {
                super::super::Auth::Bearer(t) => Some(t.0.clone()),
                _ => None,
            },
        };
        let p = preset(name, &opts).map_err(|m| flag("--protocol").invalid(m))?;
        session = p.session;
        if handshake.subprotocol.is_none() {
            handshake.subprotocol = p.subprotocol;
        }
        if let Some(path) = p.default_path {
            for t in targets.iter_mut().filter(|t| t.path_and_query == "/") {
                t.path_and_query = path.clone();
            }
        }
        if traffic.heartbeat.is_none()
            && let Some(mut hb) = p.heartbeat
            && args.heartbeat_interval != Some(Duration::ZERO)
        {
            if let Some(t) = args.heartbeat_timeout {
                hb.timeout = t;
            }
            traffic.heartbeat = Some(hb);
        }
        if let Some(m) = traffic.message.as_mut()
            && m.text.is_none()
        {
            m.text = p.message_text;
        }
    } else {
        for (set, what) in [
            (!args.subscribe.is_empty(), "--subscribe"),
            (args.publish_topic.is_some(), "--publish-topic"),
            (args.namespace.is_some(), "--namespace"),
            (args.event.is_some(), "--event"),
            (args.stomp_login.is_some(), "--stomp-login"),
            (args.init_payload.is_some(), "--init-payload"),
            (args.method.is_some(), "--method"),
        ] {
            if set {
                return Err(flag(what).invalid(format!(
                    "this option belongs to a protocol preset; add --protocol NAME ({})",
                    super::super::presets::NAMES.join(", ")
                )));
            }
        }
    }
    if !args.open.is_empty() {
        if traffic.first_message.is_some() {
            return Err(PlanError::Conflict {
                first: "--first-message".into(),
                second: "--send/--expect".into(),
                hint: "--first-message is the one-step open sequence; write it as --send MSG \
                       --expect PATTERN instead"
                    .into(),
            });
        }
        for a in &args.open {
            session.open.push(match a {
                OpenArg::Send(s) => {
                    OpenStep::Send(parse_payload(s, false).map_err(|m| flag("--send").invalid(m))?)
                }
                OpenArg::Expect(e) => {
                    OpenStep::Expect(Pattern::parse(e).map_err(|m| flag("--expect").invalid(m))?)
                }
            });
        }
    }
    let mut user = Vec::new();
    for r in &args.replies {
        user.push(Reply::parse(r).map_err(|m| flag("--reply").invalid(m))?);
    }
    // The user's rules first: they can override a preset's.
    user.append(&mut session.replies);
    session.replies = user;
    // A preset with --first-message: the message (and its expected reply) follow the
    // preset's sequence.
    if !session.open.is_empty() && traffic.first_message.is_some() {
        let first = traffic.first_message.take().unwrap_or_default();
        let expect = traffic.first_message_expect.take();
        session
            .open
            .push(OpenStep::Send(super::super::payload::Payload::text(first)));
        if let Some(e) = expect {
            session.open.push(OpenStep::Expect(Pattern::contains(&e)));
        }
    }
    traffic.session = session;
    Ok(())
}
