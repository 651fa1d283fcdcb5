//! The handshake part of [`build_plan`](super::build_plan): `Origin`, extra headers,
//! subprotocol and authentication (static token or per-connection JWT).
//!
//! A credential flag replaces the profile's whole `[auth]` table; `--jwt-alg`, `--jwt-claims`
//! and `--jwt-in` alone override single profile keys. Keys are checked here (an RS256/ES256
//! PEM must parse, an HS256 secret must be non-empty) so that a bad key fails before the run.
//! No message ever quotes a secret or a header value.

use std::path::{Path, PathBuf};

use super::pick;
use crate::plan::Overrides;
use crate::plan::compression::{Compression, parse_compression};
use crate::plan::error::{Origin, PlanError};
use crate::plan::profile::{Located, Profile};
use crate::plan::{Auth, HandshakeSpec, JwtAlg, JwtPlacement, Secret};

/// Parses `Name: value`. Used as a clap value parser and for profile `headers`.
/// Messages never repeat the header value (it may hold a credential).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    const EXAMPLE: &str = "expected 'Name: value', e.g. 'X-Client: wsscale'";
    let Some((name, value)) = s.split_once(':') else {
        return Err(format!("the header has no ':' ({EXAMPLE})"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("the header name is empty ({EXAMPLE})"));
    }
    if let Some(c) = name.chars().find(|&c| !is_tchar(c)) {
        return Err(format!(
            "header name {name:?} contains {c:?}, which is not allowed in a header name ({EXAMPLE})"
        ));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!(
            "the value of header {name:?} contains a line break or NUL; headers are one line ({EXAMPLE})"
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn one_line(l: &Located<String>, what: &str) -> Result<String, PlanError> {
    let v = l.value.trim();
    if v.is_empty() {
        return Err(l
            .origin
            .invalid(format!("the {what} is empty; give a value or leave it out")));
    }
    if v.contains(['\r', '\n', '\0']) {
        return Err(l
            .origin
            .invalid(format!("the {what} contains a line break or NUL")));
    }
    Ok(v.to_string())
}

/// The handshake spec, and a `Host` override taken from the headers.
pub(super) fn handshake(
    args: &Overrides,
    p: &Profile,
) -> Result<(HandshakeSpec, Option<String>), PlanError> {
    let origin = match pick(args.origin.clone(), "--origin", &p.origin) {
        Some(l) => Some(one_line(&l, "origin")?),
        None => None,
    };
    let subprotocol = match pick(args.subprotocol.clone(), "--subprotocol", &p.subprotocol) {
        Some(l) => Some(one_line(&l, "subprotocol")?),
        None => None,
    };
    let auth = auth(args, p)?;

    let compression = match (&args.compression, &p.compression) {
        (Some(c), _) => c.clone(),
        (None, Some(l)) => parse_compression(&l.value).map_err(|m| l.origin.invalid(m))?,
        (None, None) => Compression::None,
    };
    let mut user_agent = match pick(args.user_agent.clone(), "--user-agent", &p.user_agent) {
        Some(l) => Some(one_line(&l, "user agent")?),
        None => None,
    };
    let mut raw: Vec<Located<(String, String)>> = match &args.header_file {
        Some(path) => header_file(path)?,
        None => Vec::new(),
    };
    raw.extend(if args.headers.is_empty() {
        p.headers
            .iter()
            .map(|l| {
                parse_header(&l.value)
                    .map(|h| Located::new(h, l.origin.clone()))
                    .map_err(|m| l.origin.invalid(m))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        args.headers
            .iter()
            .map(|h| Located::flag(h.clone(), "--header"))
            .collect::<Vec<_>>()
    });
    let mut headers = Vec::new();
    let mut host = None;
    for l in raw {
        let (name, value) = l.value;
        match name.to_ascii_lowercase().as_str() {
            "host" => host = Some(value),
            "upgrade"
            | "connection"
            | "sec-websocket-key"
            | "sec-websocket-version"
            | "sec-websocket-accept" => {
                return Err(l.origin.invalid(format!(
                    "{name} is set by wsscale for the WebSocket upgrade; remove this header"
                )));
            }
            "sec-websocket-protocol" => {
                return Err(l.origin.invalid(
                    "use --subprotocol (or 'subprotocol' in a profile) instead of a Sec-WebSocket-Protocol header",
                ));
            }
            "origin" => {
                return Err(l.origin.invalid(
                    "use --origin (or 'origin' in a profile) instead of an Origin header",
                ));
            }
            "user-agent" if user_agent.is_some() => {
                return Err(PlanError::Conflict {
                    first: format!("the User-Agent header of {}", l.origin),
                    second: "--user-agent (or 'user_agent' in the profile)".into(),
                    hint: "give the user agent one way only".into(),
                });
            }
            "user-agent" => user_agent = Some(value),
            "sec-websocket-extensions" => {
                return Err(l.origin.invalid(
                    "use --compression (or 'compression' in a profile) instead of a Sec-WebSocket-Extensions header; wsscale must know what it offered",
                ));
            }
            "authorization" if auth != Auth::None => {
                return Err(PlanError::Conflict {
                    first: format!("the Authorization header of {}", l.origin),
                    second: "--token/--jwt-* (or [auth] in the profile)".into(),
                    hint: "give the credential one way only".into(),
                });
            }
            _ => headers.push((name, value)),
        }
    }
    Ok((
        HandshakeSpec {
            origin,
            headers,
            subprotocol,
            auth,
            compression,
            user_agent,
        },
        host,
    ))
}

/// The headers of `--header-file`: one `Name: value` per line; blank lines and lines
/// starting with `#` are skipped. Errors name `FILE:LINE`.
fn header_file(path: &Path) -> Result<Vec<Located<(String, String)>>, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
        what: "header file",
        path: path.to_path_buf(),
        error,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = Origin::Profile {
            path: path.to_path_buf(),
            line: i + 1,
            col: 1,
            key: "--header-file".into(),
        };
        let h = parse_header(line).map_err(|m| origin.invalid(m))?;
        out.push(Located::new(h, origin));
    }
    Ok(out)
}

/// The default JWT claims template.
pub fn default_claims() -> serde_json::Value {
    serde_json::json!({"sub": "user-{conn}", "exp": "{now+3600}"})
}

/// Reads a secret file, trimming one trailing newline (`\n` or `\r\n`).
pub fn read_secret_file(path: &Path) -> Result<Secret, PlanError> {
    let mut s = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
        what: "secret file",
        path: path.to_path_buf(),
        error,
    })?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(Secret(s))
}

/// The credentials, from the flags if any is given, else from the profile.
struct Creds {
    token: Option<Located<Secret>>,
    secret: Option<Located<Secret>>,
    secret_file: Option<Located<PathBuf>>,
    key_file: Option<Located<PathBuf>>,
    alg: Option<Located<JwtAlg>>,
    claims: Option<Located<serde_json::Value>>,
    placement: Option<Located<JwtPlacement>>,
}

fn creds(args: &Overrides, p: &Profile) -> Creds {
    let from_cli = args.token.is_some()
        || args.jwt_secret.is_some()
        || args.jwt_secret_file.is_some()
        || args.jwt_key_file.is_some();
    if from_cli {
        Creds {
            token: flag(&args.token, "--token"),
            secret: flag(&args.jwt_secret, "--jwt-secret"),
            secret_file: flag(&args.jwt_secret_file, "--jwt-secret-file"),
            key_file: flag(&args.jwt_key_file, "--jwt-key-file"),
            alg: flag(&args.jwt_alg, "--jwt-alg"),
            claims: flag(&args.jwt_claims, "--jwt-claims"),
            placement: flag(&args.jwt_in, "--jwt-in"),
        }
    } else {
        let a = &p.auth;
        Creds {
            token: a.token.clone(),
            secret: a.jwt_secret.clone(),
            secret_file: a.jwt_secret_file.clone(),
            key_file: a.jwt_key_file.clone(),
            alg: pick(args.jwt_alg, "--jwt-alg", &a.jwt_alg),
            claims: pick(args.jwt_claims.clone(), "--jwt-claims", &a.jwt_claims),
            placement: pick(args.jwt_in.clone(), "--jwt-in", &a.jwt_in),
        }
    }
}

fn flag<T: Clone>(v: &Option<T>, f: &'static str) -> Option<Located<T>> {
    v.clone().map(|v| Located::flag(v, f))
}

fn auth(args: &Overrides, p: &Profile) -> Result<Auth, PlanError> {
    let c = creds(args, p);

    // At most one credential.
    let given: Vec<&Origin> = [
        c.token.as_ref().map(|l| &l.origin),
        c.secret.as_ref().map(|l| &l.origin),
        c.secret_file.as_ref().map(|l| &l.origin),
        c.key_file.as_ref().map(|l| &l.origin),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [first, second, ..] = given.as_slice() {
        return Err(PlanError::Conflict {
            first: first.to_string(),
            second: second.to_string(),
            hint: "give one credential: a token, a JWT secret, a JWT secret file or a JWT key file"
                .into(),
        });
    }

    // The first JWT-only setting given, if any.
    let jwt_opt: Option<Origin> = [
        c.alg.as_ref().map(|l| &l.origin),
        c.claims.as_ref().map(|l| &l.origin),
        c.placement.as_ref().map(|l| &l.origin),
    ]
    .into_iter()
    .flatten()
    .next()
    .cloned();

    if let Some(token) = c.token {
        if let Some(o) = jwt_opt {
            return Err(PlanError::Conflict {
                first: token.origin.to_string(),
                second: o.to_string(),
                hint:
                    "a static token is sent as is; JWT settings apply only with a JWT secret or key"
                        .into(),
            });
        }
        if token.value.0.is_empty() || token.value.0.contains(['\r', '\n', '\0']) {
            return Err(token.origin.invalid(
                "the token is empty or contains a line break or NUL; give the bare token",
            ));
        }
        return Ok(Auth::Bearer(token.value));
    }

    let claims = c.claims.map_or_else(default_claims, |l| l.value);
    let placement = c.placement.map_or(JwtPlacement::Header, |l| l.value);

    let (alg, key) = if let Some(l) = c.secret.or(c
        .secret_file
        .map(|f| read_secret_file(&f.value).map(|s| Located::new(s, f.origin)))
        .transpose()?)
    {
        if let Some(a) = &c.alg
            && a.value != JwtAlg::HS256
        {
            return Err(PlanError::Conflict {
                first: format!("{} ({:?})", a.origin, a.value),
                second: l.origin.to_string(),
                hint:
                    "RS256/ES256 sign with a private key: use --jwt-key-file (or auth.jwt_key_file)"
                        .into(),
            });
        }
        if l.value.0.is_empty() {
            return Err(l
                .origin
                .invalid("the JWT secret is empty; give a non-empty secret"));
        }
        (JwtAlg::HS256, l.value)
    } else if let Some(f) = c.key_file {
        let pem = std::fs::read_to_string(&f.value).map_err(|error| PlanError::Read {
            what: "JWT key file",
            path: f.value.clone(),
            error,
        })?;
        let bytes = pem.as_bytes();
        let file = f.value.display();
        let alg = match c.alg.as_ref().map(|a| a.value) {
            Some(JwtAlg::HS256) => {
                return Err(f.origin.invalid(
                    "HS256 signs with a shared secret, not a key file: use --jwt-secret-file (or auth.jwt_secret_file), or --jwt-alg RS256/ES256",
                ));
            }
            Some(JwtAlg::RS256) => {
                jsonwebtoken::EncodingKey::from_rsa_pem(bytes).map_err(|_| {
                    f.origin.invalid(format!(
                        "{file} is not an RSA private key in PEM format (PKCS#1 or PKCS#8); create one with `openssl genrsa -out key.pem 2048`"
                    ))
                })?;
                JwtAlg::RS256
            }
            Some(JwtAlg::ES256) => {
                jsonwebtoken::EncodingKey::from_ec_pem(bytes)
                    .map_err(|_| f.origin.invalid(ec_key_problem(&pem, &file.to_string())))?;
                JwtAlg::ES256
            }
            None => {
                if jsonwebtoken::EncodingKey::from_rsa_pem(bytes).is_ok() {
                    JwtAlg::RS256
                } else if jsonwebtoken::EncodingKey::from_ec_pem(bytes).is_ok() {
                    JwtAlg::ES256
                } else {
                    let message = if pem.contains("BEGIN EC PRIVATE KEY") {
                        ec_key_problem(&pem, &file.to_string())
                    } else {
                        format!(
                            "{file} is neither an RSA nor a P-256 EC private key in PEM format; give a PEM private key, or use --jwt-secret-file for HS256"
                        )
                    };
                    return Err(f.origin.invalid(message));
                }
            }
        };
        (alg, Secret(pem))
    } else {
        if let Some(o) = jwt_opt {
            return Err(o.invalid(
                "JWT settings need a key: add --jwt-secret, --jwt-secret-file or --jwt-key-file (or auth.jwt_* in the profile)",
            ));
        }
        return Ok(Auth::None);
    };

    Ok(Auth::Jwt {
        alg,
        key,
        claims,
        placement,
    })
}

/// Why an EC key file was rejected (never quotes the key).
fn ec_key_problem(pem: &str, file: &str) -> String {
    if pem.contains("BEGIN EC PRIVATE KEY") {
        format!(
            "{file} is a SEC1 EC key; JWT signing needs PKCS#8: convert it with \
             `openssl pkcs8 -topk8 -nocrypt -in {file} -out key-pkcs8.pem`"
        )
    } else {
        format!(
            "{file} is not a P-256 EC private key in PKCS#8 PEM format; create one with \
             `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out key.pem`"
        )
    }
}
