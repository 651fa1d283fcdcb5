//! How the gateway answered misbehaving clients (`--misbehave`, see `plan::misbehave`): one
//! [`Answer`] per misbehaving connection, counted per kind in [`MisbehaveCounters`] (part of
//! [`super::Counters`], so it merges and travels like every other counter).
//!
//! Answers with stable labels:
//!
//! | label | what the gateway did |
//! |---|---|
//! | `http_<code>` | answered the upgrade request with this status (e.g. `http_401`) |
//! | `upgraded` | accepted the upgrade of a `bad-token` / `no-auth` connection (101) |
//! | `close_<code>` | sent a close frame with this code (1005: none in the frame) |
//! | `eof` | closed the TCP connection without a close frame |
//! | `reset` | reset the connection (RST) |
//! | `timeout` | no answer within the handshake timeout (`--handshake-timeout`) |
//! | `held` | `slow-reader`: the connection was still open when the bound ran out |
//! | `client_reset` | `abrupt-close`: the client reset the connection; no answer is expected |
//! | `connect_failed` | the TCP connect (or TLS handshake) failed: no misbehaviour was sent |
//! | `bad_response` | an answer that is not HTTP or not a WebSocket frame |
//! | `unfinished` | the run ended before an answer came |
//!
//! **Flagged** are the answers a gateway must never give a bad client: every `http_5xx`,
//! `timeout` (silence), and `upgraded` (credentials that do not validate, or none, were
//! accepted).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::misbehave::MisbehaveKind;

/// The gateway's answer to one misbehaving connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    Http(u16),
    Upgraded,
    Close(u16),
    Eof,
    Reset,
    Timeout,
    Held,
    ClientReset,
    ConnectFailed,
    BadResponse,
    Unfinished,
}

impl Answer {
    /// Stable label (see the module docs).
    pub fn label(self) -> String {
        match self {
            Answer::Http(c) => format!("http_{c}"),
            Answer::Close(c) => format!("close_{c}"),
            Answer::Upgraded => "upgraded".into(),
            Answer::Eof => "eof".into(),
            Answer::Reset => "reset".into(),
            Answer::Timeout => "timeout".into(),
            Answer::Held => "held".into(),
            Answer::ClientReset => "client_reset".into(),
            Answer::ConnectFailed => "connect_failed".into(),
            Answer::BadResponse => "bad_response".into(),
            Answer::Unfinished => "unfinished".into(),
        }
    }

    /// The inverse of [`Answer::label`].
    pub fn parse(label: &str) -> Option<Answer> {
        if let Some(c) = label.strip_prefix("http_") {
            return c.parse().ok().map(Answer::Http);
        }
        if let Some(c) = label.strip_prefix("close_") {
            return c.parse().ok().map(Answer::Close);
        }
        Some(match label {
            "upgraded" => Answer::Upgraded,
            "eof" => Answer::Eof,
            "reset" => Answer::Reset,
            "timeout" => Answer::Timeout,
            "held" => Answer::Held,
            "client_reset" => Answer::ClientReset,
            "connect_failed" => Answer::ConnectFailed,
            "bad_response" => Answer::BadResponse,
            "unfinished" => Answer::Unfinished,
            _ => return None,
        })
    }

    /// True for an answer a gateway must never give (see the module docs).
    pub fn flagged(self) -> bool {
        matches!(
            self,
            Answer::Http(500..=599) | Answer::Timeout | Answer::Upgraded
        )
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One kind's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindTally {
    /// Misbehaving connections of this kind opened.
    pub count: u64,
    /// Their answers, by [`Answer::label`].
    #[serde(with = "answer_map")]
    pub answers: BTreeMap<Answer, u64>,
}

impl KindTally {
    /// Answers that are [`Answer::flagged`].
    pub fn flagged(&self) -> u64 {
        self.answers
            .iter()
            .filter(|(a, _)| a.flagged())
            .map(|(_, n)| n)
            .sum()
    }
}

/// Misbehaving connections by kind (kinds with at least one connection).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MisbehaveCounters {
    pub kinds: BTreeMap<MisbehaveKind, KindTally>,
}

impl MisbehaveCounters {
    /// A misbehaving connection of `kind` was opened.
    pub fn opened(&mut self, kind: MisbehaveKind) {
        self.kinds.entry(kind).or_default().count += 1;
    }

    /// The gateway answered a misbehaving connection of `kind` with `answer`.
    pub fn answered(&mut self, kind: MisbehaveKind, answer: Answer) {
        *self
            .kinds
            .entry(kind)
            .or_default()
            .answers
            .entry(answer)
            .or_default() += 1;
    }

    pub fn merge(&mut self, o: &MisbehaveCounters) {
        for (kind, t) in &o.kinds {
            let mine = self.kinds.entry(*kind).or_default();
            mine.count += t.count;
            for (a, n) in &t.answers {
                *mine.answers.entry(*a).or_default() += n;
            }
        }
    }

    /// Misbehaving connections opened, over all kinds.
    pub fn count(&self) -> u64 {
        self.kinds.values().map(|t| t.count).sum()
    }

    /// Flagged answers, over all kinds.
    pub fn flagged(&self) -> u64 {
        self.kinds.values().map(KindTally::flagged).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

/// `BTreeMap<Answer, u64>` with the labels as keys.
mod answer_map {
    use super::*;
    use serde::de::Error as _;

    pub fn serialize<S: serde::Serializer>(
        v: &BTreeMap<Answer, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(a, n)| (a.label(), *n)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Answer, u64>, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (label, n) in map {
            let a = Answer::parse(&label)
                .ok_or_else(|| D::Error::custom(format!("unknown answer `{label}`")))?;
            *out.entry(a).or_default() += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_flags() {
        for a in [
            Answer::Http(401),
            Answer::Http(503),
            Answer::Close(1002),
            Answer::Upgraded,
            Answer::Eof,
            Answer::Reset,
            Answer::Timeout,
            Answer::Held,
            Answer::ClientReset,
            Answer::ConnectFailed,
            Answer::BadResponse,
            Answer::Unfinished,
        ] {
            assert_eq!(Answer::parse(&a.label()), Some(a));
        }
        assert!(Answer::Http(500).flagged());
        assert!(!Answer::Http(401).flagged());
        assert!(Answer::Timeout.flagged());
        assert!(!Answer::Close(1009).flagged());
    }

    #[test]
    fn merge_adds_and_serde_round_trips() {
        let mut a = MisbehaveCounters::default();
        a.opened(MisbehaveKind::NoAuth);
        a.answered(MisbehaveKind::NoAuth, Answer::Http(401));
        let mut b = MisbehaveCounters::default();
        b.opened(MisbehaveKind::NoAuth);
        b.answered(MisbehaveKind::NoAuth, Answer::Http(500));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.flagged(), 1);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"no-auth\""), "{json}");
        assert!(json.contains("\"http_500\":1"), "{json}");
        let back: MisbehaveCounters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
