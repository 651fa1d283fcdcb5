//! Misbehaving clients in the report (`--misbehave`): the JSON `misbehave[]` array and the
//! text summary's "Misbehaving clients" section, both from
//! [`crate::metrics::misbehave::MisbehaveCounters`], and the way back for `report merge`.
//! The answer labels and what is flagged are defined in `metrics::misbehave`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::RunOutcome;
use crate::metrics::misbehave::{Answer, KindTally, MisbehaveCounters};
use crate::plan::misbehave::MisbehaveKind;

/// One kind of misbehaving client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonMisbehave {
    /// `bad-token`, `no-auth`, `oversize-frame`, …
    pub kind: String,
    /// Misbehaving connections of this kind opened.
    pub count: u64,
    /// The gateway's answers by label (`http_401`, `close_1002`, `timeout`, …).
    pub answers: BTreeMap<String, u64>,
    /// Answers a gateway must never give: 5xx, `timeout`, `upgraded`.
    pub flagged: u64,
}

/// The `misbehave[]` array: one entry per kind that opened a connection, in kind order.
pub fn json(o: &RunOutcome) -> Vec<JsonMisbehave> {
    o.totals
        .counters
        .misbehave
        .kinds
        .iter()
        .map(|(kind, t)| JsonMisbehave {
            kind: kind.label().to_string(),
            count: t.count,
            answers: t.answers.iter().map(|(a, n)| (a.label(), *n)).collect(),
            flagged: t.flagged(),
        })
        .collect()
}

/// The counters back from a report's `misbehave[]` (`report merge`); unknown kinds or
/// answers are an error naming them.
pub fn counters(entries: &[JsonMisbehave]) -> Result<MisbehaveCounters, String> {
    let mut out = MisbehaveCounters::default();
    for e in entries {
        let kind = MisbehaveKind::from_label(&e.kind)
            .ok_or_else(|| format!("unknown misbehave kind {:?}", e.kind))?;
        let mut tally = KindTally {
            count: e.count,
            ..Default::default()
        };
        for (label, n) in &e.answers {
            let a = Answer::parse(label)
                .ok_or_else(|| format!("unknown misbehave answer {label:?}"))?;
            tally.answers.insert(a, *n);
        }
        out.merge(&MisbehaveCounters {
            kinds: [(kind, tally)].into_iter().collect(),
        });
    }
    Ok(out)
}

/// The text summary's section (empty without misbehaving connections).
pub fn text(o: &RunOutcome) -> String {
    let m = &o.totals.counters.misbehave;
    let mut s = String::new();
    if m.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "Misbehaving clients     (not in the figures above; flagged: 5xx, timeout, upgraded)"
    );
    for (kind, t) in &m.kinds {
        let answers: Vec<String> = t
            .answers
            .iter()
            .map(|(a, n)| format!("{} {n}", a.label()))
            .collect();
        let flag = match t.flagged() {
            0 => String::new(),
            n => format!("   FLAGGED {n}"),
        };
        let _ = writeln!(
            s,
            "  {:<16} {:>8}   {}{flag}",
            kind.label(),
            t.count,
            if answers.is_empty() {
                "no answer yet".to_string()
            } else {
                answers.join(", ")
            }
        );
    }
    s.push('\n');
    s
}
