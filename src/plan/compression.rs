//! `--compression`: what the upgrade request offers in `Sec-WebSocket-Extensions`
//! (permessage-deflate, RFC 7692).
//!
//! - `none` (the default) offers nothing, so capacity figures stay comparable with runs
//!   that predate the flag;
//! - `browser` offers exactly what current Chrome and Firefox send
//!   (`permessage-deflate; client_max_window_bits`) and turns on the browser defaults for
//!   `Origin` and `User-Agent` (see [`BROWSER_USER_AGENT`]);
//! - `deflate[:PARAMS]` offers permessage-deflate with the RFC 7692 parameters given, e.g.
//!   `deflate:server_no_context_takeover,client_max_window_bits=10`.
//!
//! The answer is parsed by the engine (`engine::deflate`); this module only holds the offer.

use std::fmt;

/// The `User-Agent` sent with `--compression browser` when `--user-agent` is not given
/// (Chrome's on Linux).
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// What to offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compression {
    /// No `Sec-WebSocket-Extensions` header.
    #[default]
    None,
    /// Offer permessage-deflate.
    Deflate(DeflateOffer),
}

/// A permessage-deflate offer (RFC 7692 §7.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeflateOffer {
    /// Spelled `browser` (also turns on the browser handshake defaults).
    pub browser: bool,
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N` (8..=15).
    pub server_max_window_bits: Option<u8>,
    /// `None`: not offered; `Some(None)`: offered without a value (the server may pick);
    /// `Some(Some(n))`: offered with a value.
    pub client_max_window_bits: Option<Option<u8>>,
}

impl Compression {
    /// The offer, when there is one.
    pub fn offer(&self) -> Option<&DeflateOffer> {
        match self {
            Compression::None => None,
            Compression::Deflate(o) => Some(o),
        }
    }

    /// True for `--compression browser`.
    pub fn is_browser(&self) -> bool {
        self.offer().is_some_and(|o| o.browser)
    }
}

impl DeflateOffer {
    /// What browsers send.
    pub fn browser() -> DeflateOffer {
        DeflateOffer {
            browser: true,
            client_max_window_bits: Some(None),
            ..Default::default()
        }
    }

    /// The `Sec-WebSocket-Extensions` header value.
    pub fn header_value(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(n) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={n}"));
        }
        match self.client_max_window_bits {
            Some(Some(n)) => s.push_str(&format!("; client_max_window_bits={n}")),
            Some(None) => s.push_str("; client_max_window_bits"),
            None => {}
        }
        s
    }
}

impl fmt::Display for Compression {
    /// The canonical spelling, which [`parse_compression`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Deflate(o) if o.browser => f.write_str("browser"),
            Compression::Deflate(o) => {
                let params = o.header_value();
                let params = params
                    .strip_prefix("permessage-deflate")
                    .unwrap_or_default()
                    .trim_start_matches("; ")
                    .replace("; ", ",");
                if params.is_empty() {
                    f.write_str("deflate")
                } else {
                    write!(f, "deflate:{params}")
                }
            }
        }
    }
}

const EXAMPLE: &str = "use none, browser, deflate, or deflate:PARAMS with PARAMS from \
server_no_context_takeover, client_no_context_takeover, server_max_window_bits=8..15, \
client_max_window_bits[=8..15], e.g. deflate:server_no_context_takeover,client_max_window_bits=10";

/// Parse `none`, `browser`, `deflate` or `deflate:PARAMS` (PARAMS separated by `,` or `;`).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    let s = s.trim();
    match s {
        "none" => return Ok(Compression::None),
        "browser" => return Ok(Compression::Deflate(DeflateOffer::browser())),
        "deflate" => return Ok(Compression::Deflate(DeflateOffer::default())),
        _ => {}
    }
    let Some(params) = s.strip_prefix("deflate:") else {
        return Err(format!("unknown compression {s:?}; {EXAMPLE}"));
    };
    let mut o = DeflateOffer::default();
    let mut seen = Vec::new();
    for p in params.split([',', ';']).map(str::trim) {
        if p.is_empty() {
            continue;
        }
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p, None),
        };
        if seen.contains(&name) {
            return Err(format!("parameter {name} is given twice; give it once"));
        }
        seen.push(name);
        let bits = |v: Option<&str>| -> Result<u8, String> {
            let v = v.ok_or_else(|| format!("{name} needs a value 8..15, e.g. {name}=10"))?;
            match v.parse::<u8>() {
                Ok(n) if (8..=15).contains(&n) => Ok(n),
                _ => Err(format!("{name}={v} is out of range; use 8..15")),
            }
        };
        match name {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                return Err(format!("{name} takes no value; write just {name}"));
            }
            "server_no_context_takeover" => o.server_no_context_takeover = true,
            "client_no_context_takeover" => o.client_no_context_takeover = true,
            "server_max_window_bits" => o.server_max_window_bits = Some(bits(value)?),
            "client_max_window_bits" => {
                o.client_max_window_bits = Some(match value {
                    None => None,
                    v => Some(bits(v)?),
                })
            }
            _ => {
                return Err(format!(
                    "unknown permessage-deflate parameter {name:?}; {EXAMPLE}"
                ));
            }
        }
    }
    Ok(Compression::Deflate(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_offers_what_chrome_and_firefox_send() {
        let c = parse_compression("browser").unwrap();
        assert!(c.is_browser());
        assert_eq!(
            c.offer().unwrap().header_value(),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(c.to_string(), "browser");
        assert_eq!(parse_compression("none").unwrap(), Compression::None);
        assert_eq!(
            parse_compression("deflate")
                .unwrap()
                .offer()
                .unwrap()
                .header_value(),
            "permessage-deflate"
        );
    }

    #[test]
    fn params_parse_and_round_trip() {
        let c = parse_compression(
            "deflate:server_no_context_takeover; client_max_window_bits=10,server_max_window_bits=9",
        )
        .unwrap();
        let o = c.offer().unwrap();
        assert!(o.server_no_context_takeover && !o.client_no_context_takeover);
        assert_eq!(o.server_max_window_bits, Some(9));
        assert_eq!(o.client_max_window_bits, Some(Some(10)));
        assert_eq!(
            o.header_value(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
        );
        assert_eq!(parse_compression(&c.to_string()).unwrap(), c);
        let bare = parse_compression("deflate:client_max_window_bits").unwrap();
        assert_eq!(bare.offer().unwrap().client_max_window_bits, Some(None));
        assert!(!bare.is_browser());
    }

    #[test]
    fn bad_specs_say_what_and_how() {
        for (spec, words) in [
            ("gzip", "unknown compression"),
            ("deflate:foo", "unknown permessage-deflate parameter"),
            ("deflate:server_max_window_bits=16", "out of range"),
            ("deflate:server_max_window_bits", "needs a value"),
            ("deflate:client_no_context_takeover=1", "takes no value"),
            (
                "deflate:client_max_window_bits,client_max_window_bits=9",
                "twice",
            ),
        ] {
            let e = parse_compression(spec).unwrap_err();
            assert!(e.contains(words), "{spec}: {e}");
        }
    }
}
