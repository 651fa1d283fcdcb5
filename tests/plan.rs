//! Plan building: stage arithmetic, human units, profiles, flag/profile merging, validation
//! and error messages. No network beyond resolving `localhost`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use wsscale::cli::args::{Cli, Command};
use wsscale::plan::build::{
    build_plan, build_plan_with, build_progressive, build_progressive_with, parse_header, shape,
    unescape,
};
use wsscale::plan::profile::Profile;
use wsscale::plan::units::{parse_count, parse_duration, parse_rate, parse_size, parse_stage};
use wsscale::plan::{
    Auth, CloseMode, JwtAlg, JwtPlacement, Overrides, Plan, PlanError, Slice, Stage, StageClock,
};

const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCFQ9D8g7XIivmX
ctCidHDzMp4yE8I+ikZst+nif2ztGM4kP2OGd3/8OqebkACnk8qh25eEETnPzOja
sFHDVmEdNSLwv9P2A14Xtx01G7MUq/Pr9H8RHu0GP8PowTwiJFo+Pq14Rdtk3rHD
klrHl9pUifQJvIl2SOiTe1lSKtXmR6XoKtRnSGrx86F7f6hgsFBCATKL6P+bc6cI
aH/T9xSED9cn5nBs5yvtiZ8ETIbXFxhh76df0VVESlMtGYgNuATtnTWcMtrhFJlo
xWR2gVwrPR8SinB3sC1wFmJTnXXfMYcSjx6IKdD9hLOSG06IpIvE2sUvMJDcelvS
ZKlPWKNDAgMBAAECggEAJP148c5hU+P3eak97gniHC8tp/rCDPf2qlC2U89I3drn
xTnvFzDuToW9ZjmnZNxp/1ljih357QsUizcrysucMy4/n5GvdPbkVDLYoZgpshA0
qYb5CjiKVBS4/U89sMBkaCifn+XMCwihUQa7ufEVgie0nEs/4JxGKkGvvlXzf3J3
NRbMoIeCoKvHT0VX8HYqpXcmhPEwYQPG6b++QFgazHZFP6QF4oXrAy6I3nMX9q8w
MOa+/gAtIq3AaorQPcPH0gRLUadwUIPwji49L4u+8nfSWJievM0cJXi4p5lJhRlA
wnrbFFKRZGKhrUdo42LivZVHZUq/ct1uNfqW2NnoIQKBgQC8SewzmKJXSUppiH8J
aQsRLqC5yahtTjRI2ZlMYfwwcaRaqFDLwEoxU7j7lPK+/S68i8z3j9chhkH8pyhZ
Zz9U/SxghPCEy6PayxpKmpw1rRn5Bub8N5k4DwRaRYsc5m3QK0a9qecH8cF847j8
o6NT8zjfLcUkBiLDl52Ab112cQKBgQC1MFXTA8IF+jjGwp/sVCxb1PAyyX1j2CF2
yffF6ihUjHHoWrIXXFSCklzcKbuNphpq8xH71nZr7/qWYcHqF9QKTdrhiDKPnUhP
6rTOX/+Sg2PGIgA0L0K517iKR/CylR4Xs1hX34SxVXKo0+MZPW2MpMgmHRW9K7lf
PiFQJWuW8wKBgC2OsVD2oGkAObn5JcuwF9ZrcsYhLdhssKfjxny9xJgwFvU8fnge
KZVvzXVJ38YoWlOSe+B2dDYPVw37n/6pxaAZtdAQumVXJGk+9TiR2jP+kyc27VKf
XTo8H/B7nSI7+twAbJhdcKHyc791FgBC07TvR5Zwa5/AwE6U863sxC9xAoGAAdBK
C6Kt/oFSsCqijysIhqLLBLcfmjA/pYDACisd3DrLqRe/UJyL/AKbC1kfl3tiKE/m
ji7HYK02ROsVldJHPRMqbbd/ShC4+JPQ23/6fuzxwrn0ZpFSiamvHzM5JZB4jKQu
7jI+kcfZLfdw/n+u6Ql9N2RzI0GcyWdFzheRzCECgYBME0cNjwVaJvwDHOvi37Sn
8uE4SehSvQkHcv5BpUZjincJvgoSZUSSxQ5CnQBrOQMBGaHxp1tCkirzLNLwWWqm
czpLxMKQpfcdtlVFyHUAud/j2Me1kPPcfzz0XQRDBUMoyzlNjqGwAODFgw7DUNtL
xL7OOiaVZhfmJTLgRUt+Lw==
-----END PRIVATE KEY-----
";
/// The same key in SEC1 form, which jsonwebtoken does not read.
const EC_SEC1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEILbm5HlkbOQrWJEeejG89XGU5KgSBwpkvxXOuHbSDG/1oAoGCCqGSM49
AwEHoUQDQgAERE4+2XwOrw9b1XQBStkMeVhe+QOgdXjqIddvA8f7Hb4AptsiK4aH
aJyWAqchbb605gM8wgS5r17Cye/NbwmOBw==
-----END EC PRIVATE KEY-----
";
/// PKCS#8 (jsonwebtoken reads EC keys only in PKCS#8).
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtubkeWRs5CtYkR56
Mbz1cZTkqBIHCmS/Fc64dtIMb/WhRANCAARETj7ZfA6vD1vVdAFK2Qx5WF75A6B1
eOoh128Dx/sdvgCm2yIrhodonJYCpyFtvrTmAzzCBLmvXsLJ781vCY4H
-----END PRIVATE KEY-----
";

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn st(duration: Duration, target: u64) -> Stage {
    Stage { duration, target }
}

/// The plan settings of `wsscale run ARGV` (clap → [`Overrides`], as the binary does).
fn run_args(argv: &[&str]) -> Result<Overrides, clap::Error> {
    let mut full = vec!["wsscale", "run"];
    full.extend_from_slice(argv);
    match Cli::try_parse_from(full)?.command {
        Command::Run(a) => Ok(a.overrides()),
        _ => unreachable!(),
    }
}

fn plan(argv: &[&str]) -> Result<Plan, PlanError> {
    build_plan(&run_args(argv).expect("arguments parse"))
}

fn profile(text: &str) -> Result<Profile, PlanError> {
    Profile::parse(text, Path::new("profiles/x.toml"))
}

fn plan_from_text(text: &str, argv: &[&str]) -> Result<Plan, PlanError> {
    let p = profile(text)?;
    build_plan_with(&run_args(argv).unwrap(), Some(&p))
}

fn err_text(r: Result<Plan, PlanError>) -> String {
    match r {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Stage arithmetic.

#[test]
fn target_at_table() {
    let ramp_hold_down = vec![st(s(10), 100), st(s(30), 100), st(s(5), 0)];
    let cases: &[(&str, Vec<Stage>, Duration, f64)] = &[
        ("ramp start", ramp_hold_down.clone(), s(0), 0.0),
        ("ramp middle", ramp_hold_down.clone(), s(5), 50.0),
        ("ramp 1/4", ramp_hold_down.clone(), ms(2500), 25.0),
        (
            "ramp end = hold start",
            ramp_hold_down.clone(),
            s(10),
            100.0,
        ),
        ("hold", ramp_hold_down.clone(), s(25), 100.0),
        ("hold end", ramp_hold_down.clone(), ms(39_999), 100.0),
        ("ramp-down start", ramp_hold_down.clone(), s(40), 100.0),
        ("ramp-down middle", ramp_hold_down.clone(), ms(42_500), 50.0),
        ("after the end", ramp_hold_down.clone(), s(45), 0.0),
        ("long after the end", ramp_hold_down.clone(), s(1000), 0.0),
        (
            "k6 up-up",
            vec![st(s(10), 100), st(s(10), 300)],
            s(15),
            200.0,
        ),
        ("k6 down", vec![st(s(10), 100), st(s(10), 50)], s(15), 75.0),
        (
            "zero-length jump",
            vec![st(s(0), 80), st(s(10), 80)],
            s(0),
            80.0,
        ),
        (
            "zero-length jump later",
            vec![st(s(0), 80), st(s(10), 80)],
            s(5),
            80.0,
        ),
        ("single ends at target", vec![st(s(10), 40)], s(20), 40.0),
    ];
    for (name, stages, t, want) in cases {
        let got = StageClock::new(stages.clone()).target_at(*t);
        assert!(
            (got - want).abs() < 1e-6,
            "{name}: at {t:?} got {got}, want {want}"
        );
    }
}

#[test]
fn stage_index_table() {
    let c = StageClock::new(vec![st(s(10), 100), st(s(30), 100), st(s(5), 0)]);
    let cases = [
        (s(0), Some(0)),
        (ms(9_999), Some(0)),
        (s(10), Some(1)),
        (s(39), Some(1)),
        (s(40), Some(2)),
        (ms(44_999), Some(2)),
        (s(45), None),
        (s(100), None),
    ];
    for (t, want) in cases {
        assert_eq!(c.stage_index(t), want, "at {t:?}");
    }
    assert_eq!(c.total(), s(45));
    // A zero-length stage is never "running".
    let j = StageClock::new(vec![st(s(0), 10), st(s(5), 10)]);
    assert_eq!(j.stage_index(s(0)), Some(1));
}

#[test]
fn steady_until_is_the_end_of_a_hold_only() {
    let c = StageClock::new(vec![st(s(10), 100), st(s(30), 100), st(s(5), 0)]);
    // The ramp moves the target; the hold is steady until its end; the ramp-down moves.
    assert_eq!(c.steady_until(s(3)), None);
    assert_eq!(c.steady_until(s(10)), Some(s(40)));
    assert_eq!(c.steady_until(ms(39_999)), Some(s(40)));
    assert_eq!(c.steady_until(s(40)), None);
    assert_eq!(c.steady_until(s(45)), None, "after the last stage");
    // A jump (0 s stage) then a hold: steady from the jump on.
    let j = StageClock::new(vec![st(s(0), 10), st(s(5), 10)]);
    assert_eq!(j.steady_until(s(1)), Some(s(5)));
    // A stage holding zero before anything opens is steady too.
    let idle = StageClock::new(vec![st(s(2), 0), st(s(1), 5)]);
    assert_eq!(idle.steady_until(s(1)), Some(s(2)));
}

#[test]
fn slices_partition_sums_to_global() {
    let clock = StageClock::new(vec![st(s(10), 1000), st(s(10), 1000), st(s(7), 0)]);
    for n in 1..=7 {
        for step in 0..=2800u64 {
            let t = ms(step * 10);
            let global = clock.target_at(t);
            let whole = Slice::WHOLE.count(global);
            assert!(
                whole.abs_diff(global.round() as u64) <= 1,
                "whole count at {t:?}"
            );
            let sum: u64 = (0..n).map(|i| Slice::nth(i, n).count(global)).sum();
            assert_eq!(sum, whole, "n={n} t={t:?} global={global}");
            // Nested: slice 1 of 3, split again n ways (processes, then shards).
            let outer = Slice::nth(1, 3);
            let nested: u64 = (0..n).map(|i| outer.sub(i, n).count(global)).sum();
            assert_eq!(nested, outer.count(global), "nested n={n} t={t:?}");
        }
    }
    // Exact multiples do not lose a connection to floating-point rounding.
    for g in [3.0, 10.0, 1000.0, 18_000.0, 100_000.0] {
        for n in 1..=7 {
            let sum: u64 = (0..n).map(|i| Slice::nth(i, n).count(g)).sum();
            assert_eq!(sum, g as u64, "g={g} n={n}");
        }
    }
}

#[test]
fn whole_counts_reach_every_stage_target_exactly() {
    // `--stage 1s:10 --stage 1s:0` and `-c 10 --hold 0s`: the peak sits at one instant of the
    // fractional target; the whole count must still reach it (it used to stop at 9).
    let peak_vertex = StageClock::new(vec![st(s(1), 10), st(s(1), 0)]);
    let ramp_only = StageClock::new(vec![st(s(10), 10), st(s(5), 0)]);
    for clock in [&peak_vertex, &ramp_only] {
        let end = clock.total();
        let mut max = 0.0f64;
        let mut step = 0u64;
        while ms(step) < end {
            max = max.max(clock.count_at(ms(step)));
            step += 7;
        }
        assert_eq!(max, 10.0, "{:?}", clock.stages());
    }
    // Rounded up, never past the target, and whole at every instant; the sum over slices
    // is still exact.
    assert_eq!(peak_vertex.count_at(ms(0)), 0.0);
    assert_eq!(peak_vertex.count_at(ms(1)), 1.0);
    assert_eq!(peak_vertex.count_at(ms(999)), 10.0);
    assert_eq!(peak_vertex.count_at(ms(1000)), 10.0);
    assert_eq!(peak_vertex.count_at(ms(1999)), 1.0);
    assert_eq!(peak_vertex.count_at(ms(2000)), 0.0);
    let exact = StageClock::new(vec![st(s(1), 1000)]);
    assert_eq!(
        exact.count_at(ms(300)),
        300.0,
        "no float noise rounds 300 up to 301"
    );
    for n in 1..=7 {
        let g = peak_vertex.count_at(ms(999));
        let sum: u64 = (0..n).map(|i| Slice::nth(i, n).count(g)).sum();
        assert_eq!(sum, 10);
    }
}

#[test]
fn slices_are_balanced() {
    for n in 1..=7usize {
        for g in [7.0f64, 100.0, 1001.0] {
            let counts: Vec<u64> = (0..n).map(|i| Slice::nth(i, n).count(g)).collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "g={g} n={n} counts={counts:?}");
        }
    }
}

#[test]
fn shape_drops_no_op_stages() {
    let cases = [
        (
            (s(10), s(30), s(5)),
            vec![st(s(10), 9), st(s(30), 9), st(s(5), 0)],
        ),
        ((s(10), s(0), s(5)), vec![st(s(10), 9), st(s(5), 0)]),
        ((s(10), s(30), s(0)), vec![st(s(10), 9), st(s(30), 9)]),
        // A zero ramp is a jump and stays, or the hold would become a ramp.
        (
            (s(0), s(30), s(5)),
            vec![st(s(0), 9), st(s(30), 9), st(s(5), 0)],
        ),
        ((s(0), s(0), s(0)), vec![st(s(0), 9)]),
    ];
    for ((r, h, d), want) in cases {
        assert_eq!(shape(9, r, h, d), want, "ramp {r:?} hold {h:?} down {d:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Units.

#[test]
fn count_table() {
    let good = [
        ("0", 0),
        ("18000", 18_000),
        ("18_000", 18_000),
        ("18k", 18_000),
        ("18K", 18_000),
        ("1.5k", 1_500),
        ("1.0", 1),
        ("1M", 1_000_000),
        ("2.5M", 2_500_000),
        ("1G", 1_000_000_000),
        (" 7 ", 7),
    ];
    for (input, want) in good {
        assert_eq!(parse_count(input), Ok(want), "{input}");
    }
    let bad = [
        "",
        "k",
        "-5",
        "1.2345k",
        "1.5",
        "1m",
        "10x",
        "1e3",
        "1.k",
        "abc",
        "99999999999999999999999",
    ];
    for input in bad {
        let e = parse_count(input).expect_err(input);
        let m = e.to_string();
        assert!(m.contains(&format!("{input:?}")), "{m}");
        assert!(m.contains("expected e.g. \"18000\", \"18k\""), "{m}");
    }
    assert!(
        parse_count("1.2345k")
            .unwrap_err()
            .to_string()
            .contains("whole")
    );
}

#[test]
fn duration_table() {
    let good = [
        ("0", s(0)),
        ("0s", s(0)),
        ("10s", s(10)),
        ("1m", s(60)),
        ("1m30s", s(90)),
        ("500ms", ms(500)),
        ("2h", s(7200)),
    ];
    for (input, want) in good {
        assert_eq!(parse_duration(input), Ok(want), "{input}");
    }
    for input in ["", "10", "ten seconds", "-1s", "10 parsecs", "s"] {
        let m = parse_duration(input).expect_err(input).to_string();
        assert!(m.contains("is not a duration"), "{m}");
        assert!(m.contains("expected e.g. \"10s\""), "{m}");
    }
    assert!(
        parse_duration("10")
            .unwrap_err()
            .to_string()
            .contains("unit is missing")
    );
}

#[test]
fn size_table() {
    let good = [
        ("1024", 1024),
        ("64k", 64_000),
        ("64kB", 64_000),
        ("64KiB", 65_536),
        ("64Ki", 65_536),
        ("64kib", 65_536),
        ("16MiB", 16 << 20),
        ("16M", 16_000_000),
        ("1GiB", 1 << 30),
        ("1.5KiB", 1536),
        ("0", 0),
    ];
    for (input, want) in good {
        assert_eq!(parse_size(input), Ok(want), "{input}");
    }
    for input in ["", "MiB", "16 parsecs", "1.3KiB", "-1", "1e6"] {
        let m = parse_size(input).expect_err(input).to_string();
        assert!(m.contains("is not a size") && m.contains("16MiB"), "{m}");
    }
}

#[test]
fn stage_table() {
    assert_eq!(parse_stage("1m:10000"), Ok(st(s(60), 10_000)));
    assert_eq!(parse_stage("30s:10k"), Ok(st(s(30), 10_000)));
    assert_eq!(parse_stage("0:100"), Ok(st(s(0), 100)));
    assert_eq!(parse_stage("1m30s:1.5k"), Ok(st(s(90), 1_500)));
    for input in ["1m", "1m:", ":10", "1m:ten", "x:10", "1m:-1"] {
        let m = parse_stage(input).expect_err(input).to_string();
        assert!(
            m.contains("is not a stage") && m.contains("\"1m:10000\""),
            "{m}"
        );
    }
}

#[test]
fn rate_table() {
    let good = [
        ("10/s", 10.0),
        ("0.5/s", 0.5),
        ("1/10s", 0.1),
        ("600/m", 10.0),
        ("600/min", 10.0),
        ("3600/h", 1.0),
        ("1/500ms", 2.0),
        ("0/s", 0.0),
        (" 5 / s ", 5.0),
    ];
    for (input, want) in good {
        let got = parse_rate(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert!((got - want).abs() < 1e-9, "{input}: {got} != {want}");
    }
    for input in [
        "10", "10/", "/s", "-1/s", "x/s", "1/0s", "1/parsec", "inf/s", "NaN/s",
    ] {
        let m = parse_rate(input).expect_err(input).to_string();
        assert!(m.contains("is not a rate") && m.contains("\"10/s\""), "{m}");
    }
}

#[test]
fn header_table() {
    assert_eq!(parse_header("X-A: b"), Ok(("X-A".into(), "b".into())));
    assert_eq!(parse_header("X-A:b:c"), Ok(("X-A".into(), "b:c".into())));
    assert_eq!(parse_header("X-Empty:"), Ok(("X-Empty".into(), "".into())));
    for bad in [
        "no colon",
        ": v",
        "Bad Name: v",
        "X-A: a\r\nX-B: b",
        "X(A): v",
    ] {
        let m = parse_header(bad).expect_err(bad);
        assert!(m.contains("Name: value"), "{m}");
    }
    // The value (possibly a credential) is never repeated.
    let m = parse_header("X-Key: sup3r\nsecret").unwrap_err();
    assert!(!m.contains("sup3r"), "{m}");
}

// ---------------------------------------------------------------------------------------
// Shipped profiles.

fn shipped_profiles() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("profiles")
        .expect("profiles/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_profile_builds() {
    let files = shipped_profiles();
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let args = run_args(&[f.to_str().unwrap()]).unwrap();
        let plans =
            match build_progressive(&args).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
                Some(prog) => prog.steps.into_iter().map(|s| s.plan).collect(),
                None => {
                    let p = build_plan(&args).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                    assert_eq!(p.profile.as_deref(), Some(f.as_path()));
                    vec![p]
                }
            };
        for p in plans {
            assert!(!p.stages.is_empty(), "{}", f.display());
            assert!(p.targets.is_empty(), "{} names a target", f.display());
        }
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with('#'),
            "{} has no comment header",
            f.display()
        );
        assert!(
            Profile::load(f).unwrap().description.is_some(),
            "{}",
            f.display()
        );
    }
}

#[test]
fn shipped_profile_shapes() {
    let cases: &[(&str, u64, Vec<Stage>, usize)] = &[
        (
            "quick",
            100,
            vec![st(s(10), 100), st(s(30), 100), st(s(5), 0)],
            0,
        ),
        (
            "medium",
            1000,
            vec![st(s(30), 1000), st(s(120), 1000), st(s(10), 0)],
            0,
        ),
        (
            "stress",
            5000,
            vec![st(s(60), 5000), st(s(300), 5000), st(s(30), 0)],
            0,
        ),
        (
            "hold-18k",
            18_000,
            vec![st(s(6), 18_000), st(s(30), 18_000), st(s(3), 0)],
            4,
        ),
        (
            "hold-100k",
            100_000,
            vec![st(s(900), 100_000), st(s(1800), 100_000), st(s(300), 0)],
            8,
        ),
    ];
    for (name, peak, stages, sources) in cases {
        let p = plan(&[&format!("profiles/{name}.toml")]).unwrap();
        assert_eq!(p.peak_connections(), *peak, "{name}");
        assert_eq!(&p.stages, stages, "{name}");
        assert_eq!(p.sources.len(), *sources, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Profile parsing and errors.

#[test]
fn full_profile_parses() {
    let text = r#"
description = "everything"
targets = ["ws://127.0.0.1:9001/ws?x=1"]
threads = 3
max_pending = "2k"
connect_timeout = "3s"
handshake_timeout = "4s"
close_timeout = "1s"
close = "reset"
source_ips = ["127.0.0.2-127.0.0.3"]
origin = "https://example.com"
headers = ["X-A: b"]
subprotocol = "chat"
max_frame = "64KiB"
reconnect = { initial = "100ms", max = "10s" }
interval = "2s"
rcvbuf = "4KiB"
sndbuf = 8192
report_json = "out/report.json"

[[stages]]
duration = "1m"
target = "10k"

[[stages]]
duration = "30s"
target = 0

[auth]
jwt_secret = "s3cr3t-value"
jwt_claims = { sub = "u-{conn}", exp = "{now+60}", admin = true }
jwt_in = "query:access_token"
"#;
    let p = plan_from_text(text, &[]).unwrap();
    assert_eq!(p.stages, vec![st(s(60), 10_000), st(s(30), 0)]);
    assert_eq!(p.targets.len(), 1);
    assert_eq!(p.targets[0].addr, "127.0.0.1:9001".parse().unwrap());
    assert_eq!(p.targets[0].path_and_query, "/ws?x=1");
    assert_eq!(p.threads, 3);
    assert_eq!(p.max_pending, 2000);
    assert_eq!(p.connect_timeout, s(3));
    assert_eq!(p.handshake_timeout, s(4));
    assert_eq!(p.close_timeout, s(1));
    assert_eq!(p.close_mode, CloseMode::Reset);
    assert_eq!(p.sources.len(), 2);
    assert_eq!(p.handshake.origin.as_deref(), Some("https://example.com"));
    assert_eq!(p.handshake.headers, vec![("X-A".into(), "b".into())]);
    assert_eq!(p.handshake.subprotocol.as_deref(), Some("chat"));
    assert_eq!(p.max_frame, 65_536);
    let r = p.reconnect.unwrap();
    assert_eq!((r.initial, r.max), (ms(100), s(10)));
    assert_eq!(p.interval, s(2));
    assert_eq!(p.socket_rcvbuf, Some(4096));
    assert_eq!(p.socket_sndbuf, Some(8192));
    // Relative to the profile's directory.
    assert_eq!(
        p.report_json,
        Some(PathBuf::from("profiles/out/report.json"))
    );
    match &p.handshake.auth {
        Auth::Jwt {
            alg,
            key,
            claims,
            placement,
        } => {
            assert_eq!(*alg, JwtAlg::HS256);
            assert_eq!(key.0, "s3cr3t-value");
            assert_eq!(claims["admin"], serde_json::json!(true));
            assert_eq!(claims["sub"], serde_json::json!("u-{conn}"));
            assert_eq!(*placement, JwtPlacement::Query("access_token".into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{p:?}").contains("s3cr3t"));
}

#[test]
fn defaults_apply() {
    let p = plan(&["-c", "10"]).unwrap();
    assert_eq!(p.stages, vec![st(s(10), 10), st(s(30), 10), st(s(5), 0)]);
    assert_eq!(p.max_pending, 1024);
    assert_eq!(p.connect_timeout, s(10));
    assert_eq!(p.handshake_timeout, s(10));
    assert_eq!(p.close_timeout, s(2));
    assert_eq!(p.close_mode, CloseMode::Graceful);
    assert_eq!(p.max_frame, 16 << 20);
    assert_eq!(p.reconnect, None);
    assert_eq!(p.interval, s(5));
    assert!(p.threads >= 1);
    assert!(p.targets.is_empty() && p.sources.is_empty());
    assert_eq!(p.handshake.auth, Auth::None);
    assert_eq!(p.profile, None);
}

#[test]
fn unknown_key_error() {
    let e = profile("connections = 10\nrmap = \"10s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:2:1: unknown key 'rmap'"),
        "{e}"
    );
    assert!(e.contains("did you mean 'ramp'?"), "{e}");
    let e = profile("[auth]\ntokn = \"x\"\n").unwrap_err().to_string();
    assert!(
        e.starts_with("profiles/x.toml:2:1: unknown key 'tokn'"),
        "{e}"
    );
    assert!(e.contains("did you mean 'token'?"), "{e}");
}

#[test]
fn bad_duration_error_has_line_and_column() {
    let text = "# a comment\nconnections = 100\n\n    ramp   =   \"10 parsecs\"\n";
    let e = profile(text).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "profiles/x.toml:4:16: invalid value for 'ramp': \"10 parsecs\" is not a duration"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("(expected e.g. \"10s\", \"1m30s\", \"500ms\")"),
        "{e}"
    );
    // An integer duration gets a hint about units.
    let e = profile("hold = 30\n").unwrap_err().to_string();
    assert!(
        e.starts_with("profiles/x.toml:1:8: invalid value for 'hold'"),
        "{e}"
    );
    assert!(e.contains("\"30s\""), "{e}");
    // Inside [[stages]].
    let e = profile("[[stages]]\nduration = \"1m\"\ntarget = \"ten\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:3:10: invalid value for 'stages[0].target'"),
        "{e}"
    );
}

#[test]
fn type_and_syntax_errors_are_located() {
    let e = profile("connections = 10\nthreads = true\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:2:11: invalid value for 'threads'"),
        "{e}"
    );
    let e = profile("targets = \"ws://x\"\n").unwrap_err().to_string();
    assert!(
        e.starts_with("profiles/x.toml:1:11: invalid value for 'targets'"),
        "{e}"
    );
    let e = profile("connections = 1\nconnections = 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:2:1: duplicate key 'connections'"),
        "{e}"
    );
    let e = profile("[[stages]]\nduration = \"1s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("profiles/x.toml:1:1: missing key 'target'"),
        "{e}"
    );
    let e = profile("connections = \n").unwrap_err().to_string();
    assert!(e.starts_with("profiles/x.toml:1:"), "{e}");
    let e = profile("close = \"slam\"\n").unwrap_err().to_string();
    assert!(
        e.contains("'close'") && e.contains("\"graceful\" or \"reset\""),
        "{e}"
    );
}

#[test]
fn connections_and_stages_conflict() {
    let text = "connections = 10\n[[stages]]\nduration = \"1m\"\ntarget = 10\n";
    let e = profile(text).unwrap_err();
    assert!(matches!(e, PlanError::Conflict { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("profiles/x.toml:1:15 ('connections')"), "{m}");
    assert!(m.contains("'stages'") && m.contains("either"), "{m}");
    let m = profile("ramp = \"1s\"\n[[stages]]\nduration = \"1m\"\ntarget = 10\n")
        .unwrap_err()
        .to_string();
    assert!(m.contains("('ramp')"), "{m}");
}

#[test]
fn profile_validation_errors_point_at_the_key() {
    let m = err_text(plan_from_text("connections = 10\nthreads = 0\n", &[]));
    assert!(
        m.starts_with("profiles/x.toml:2:11: invalid value for 'threads': 0 is too small"),
        "{m}"
    );
    let m = err_text(plan_from_text(
        "connections = 10\ntargets = [\"http://h/\"]\n",
        &[],
    ));
    assert!(
        m.starts_with("profiles/x.toml:2:12: invalid value for 'targets'"),
        "{m}"
    );
    assert!(m.contains("use ws://"), "{m}");
    let m = err_text(plan_from_text(
        "connections = 10\nheaders = [\"X-A: 1\", \"bad\"]\n",
        &[],
    ));
    assert!(
        m.starts_with("profiles/x.toml:2:22: invalid value for 'headers'"),
        "{m}"
    );
    let m = err_text(plan_from_text(
        "connections = 10\nsource_ips = [\"127.0.0.2\", \"nope\"]\n",
        &[],
    ));
    assert!(
        m.starts_with("profiles/x.toml:2:28: invalid value for 'source_ips'"),
        "{m}"
    );
    assert!(m.contains("nope"), "{m}");
}

#[test]
fn missing_profile_file() {
    let m = err_text(plan(&["profiles/does-not-exist.toml"]));
    assert!(
        m.contains("cannot read profile profiles/does-not-exist.toml"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------
// Flags versus profile.

#[test]
fn cli_overrides_profile() {
    let args = run_args(&["profiles/quick.toml", "-c", "7"]).unwrap();
    let p = build_plan(&args).unwrap();
    assert_eq!(p.stages, vec![st(s(10), 7), st(s(30), 7), st(s(5), 0)]);

    let p = plan(&[
        "profiles/quick.toml",
        "--hold",
        "1m",
        "--close",
        "reset",
        "--threads",
        "3",
    ])
    .unwrap();
    assert_eq!(p.stages, vec![st(s(10), 100), st(s(60), 100), st(s(5), 0)]);
    assert_eq!(p.close_mode, CloseMode::Reset);
    assert_eq!(p.threads, 3);

    let p = plan(&[
        "profiles/hold-18k.toml",
        "--stage",
        "10s:5",
        "--source-ip",
        "127.0.0.7",
    ])
    .unwrap();
    assert_eq!(p.stages, vec![st(s(10), 5)]);
    assert_eq!(
        p.sources,
        vec!["127.0.0.7".parse::<std::net::IpAddr>().unwrap()]
    );

    let text = "[[stages]]\nduration = \"1m\"\ntarget = 10\n";
    let p = plan_from_text(text, &["-c", "3", "--ramp", "1s"]).unwrap();
    assert_eq!(p.stages, vec![st(s(1), 3), st(s(30), 3), st(s(5), 0)]);
    let m = err_text(plan_from_text(text, &["--ramp", "1s"]));
    assert!(
        m.contains("--ramp cannot be combined with the [[stages]] of profiles/x.toml"),
        "{m}"
    );
    assert!(m.contains("-c N"), "{m}");

    let p = plan_from_text("connections = 5\nreconnect = true\n", &["--no-reconnect"]).unwrap();
    assert_eq!(p.reconnect, None);
    let p = plan_from_text(
        "connections = 5\nreconnect = true\n",
        &["--reconnect-max", "1m"],
    )
    .unwrap();
    assert_eq!(p.reconnect.unwrap().max, s(60));
    let p = plan(&["-c", "5", "--report-json", "r.json"]).unwrap();
    assert_eq!(p.report_json, Some(PathBuf::from("r.json")));
}

#[test]
fn stage_conflicts_with_connections() {
    for other in [
        ["-c", "7"],
        ["--ramp", "1s"],
        ["--hold", "1s"],
        ["--ramp-down", "1s"],
    ] {
        let mut argv = vec!["--stage", "1m:10"];
        argv.extend_from_slice(&other);
        let e = run_args(&argv)
            .err()
            .unwrap_or_else(|| panic!("{argv:?} parsed"));
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{argv:?}"
        );
    }
    let p = plan(&[
        "--stage", "1m:10k", "--stage", "30s:10k", "--stage", "10s:0",
    ])
    .unwrap();
    assert_eq!(
        p.stages,
        vec![st(s(60), 10_000), st(s(30), 10_000), st(s(10), 0)]
    );
}

#[test]
fn load_shape_errors() {
    assert!(matches!(plan(&[]), Err(PlanError::NoLoad)));
    let m = err_text(plan(&["--stage", "1m:0"]));
    assert!(
        m.starts_with("invalid value for --stage: every stage target is 0"),
        "{m}"
    );
    let m = err_text(plan(&["-c", "0"]));
    assert!(m.contains("--connections"), "{m}");
    let m = err_text(plan_from_text(
        "[[stages]]\nduration = \"1m\"\ntarget = \"5G\"\n",
        &[],
    ));
    assert!(m.contains("processes or agents"), "{m}");
    let e = run_args(&["-c", "1.2345k"]).err().unwrap();
    assert!(e.to_string().contains("not a whole number"), "{e}");
}

#[test]
fn range_checks() {
    let cases: &[(&[&str], &str)] = &[
        (&["-c", "1", "--threads", "0"], "--threads"),
        (&["-c", "1", "--max-pending", "0"], "--max-pending"),
        (&["-c", "1", "--connect-timeout", "0"], "--connect-timeout"),
        (
            &["-c", "1", "--handshake-timeout", "0s"],
            "--handshake-timeout",
        ),
        (&["-c", "1", "--interval", "0"], "--interval"),
        (&["-c", "1", "--max-frame", "100"], "--max-frame"),
        (&["-c", "1", "--rcvbuf", "0"], "--rcvbuf"),
        (&["-c", "1", "--sndbuf", "4GiB"], "--sndbuf"),
        (
            &["-c", "1", "--reconnect-initial", "0"],
            "--reconnect-initial",
        ),
        (
            &[
                "-c",
                "1",
                "--reconnect-initial",
                "1m",
                "--reconnect-max",
                "1s",
            ],
            "--reconnect-max",
        ),
    ];
    for (argv, flag) in cases {
        let m = err_text(plan(argv));
        assert!(
            m.starts_with(&format!("invalid value for {flag}:")),
            "{argv:?}: {m}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Targets.

#[test]
fn target_urls() {
    let p = plan(&[
        "-c",
        "1",
        "--target",
        "ws://127.0.0.1/",
        "--target",
        "ws://127.0.0.1:80",
        "--target",
        "ws://127.0.0.1:8080/a/b?x=1&y=2",
        "--target",
        "wss://127.0.0.1",
        "--target",
        "wss://127.0.0.1:443/s",
        "--target",
        "ws://localhost:9000/ws",
        "--target",
        "ws://[::1]:9000/v6",
    ])
    .unwrap();
    let got: Vec<(&str, &str, String, bool)> = p
        .targets
        .iter()
        .map(|t| {
            (
                t.host_header.as_str(),
                t.path_and_query.as_str(),
                t.addr.to_string(),
                t.tls,
            )
        })
        .collect();
    let want = vec![
        ("127.0.0.1", "/", "127.0.0.1:80".to_string(), false),
        ("127.0.0.1", "/", "127.0.0.1:80".to_string(), false),
        (
            "127.0.0.1:8080",
            "/a/b?x=1&y=2",
            "127.0.0.1:8080".to_string(),
            false,
        ),
        ("127.0.0.1", "/", "127.0.0.1:443".to_string(), true),
        ("127.0.0.1", "/s", "127.0.0.1:443".to_string(), true),
        ("localhost:9000", "/ws", "127.0.0.1:9000".to_string(), false),
        ("[::1]:9000", "/v6", "[::1]:9000".to_string(), false),
    ];
    assert_eq!(got, want);
    assert_eq!(p.targets[2].url, "ws://127.0.0.1:8080/a/b?x=1&y=2");
}

#[test]
fn bad_target_urls() {
    let cases = [
        ("127.0.0.1:8080/ws", "ws://"),
        ("http://127.0.0.1/", "use ws://"),
        ("https://127.0.0.1/", "use wss://"),
        ("ftp://127.0.0.1/", "ws:// or wss://"),
        ("ws://", "ws://127.0.0.1:8080/ws"),
        ("ws://u:p@127.0.0.1/", "user info"),
        ("ws://127.0.0.1/#frag", "fragment"),
        ("ws://127.0.0.1:99999/", "ws://127.0.0.1:8080/ws"),
    ];
    for (url, hint) in cases {
        let m = err_text(plan(&["-c", "1", "--target", url]));
        assert!(m.starts_with("invalid value for --target:"), "{url}: {m}");
        assert!(m.contains(hint), "{url}: {m}");
    }
    let e = plan(&["-c", "1", "--target", "ws://no-such-host.invalid/ws"]).unwrap_err();
    assert!(
        matches!(&e, PlanError::Resolve { url, .. } if url == "ws://no-such-host.invalid/ws"),
        "{e:?}"
    );
    assert!(e.to_string().contains("use an IP address"), "{e}");
}

#[test]
fn source_ips() {
    let p = plan(&[
        "-c",
        "1",
        "--source-ip",
        "127.0.0.2-127.0.0.4",
        "--source-ip",
        "127.0.0.9",
    ])
    .unwrap();
    assert_eq!(p.sources.len(), 4);
    let e = plan(&[
        "-c",
        "1",
        "--source-ip",
        "127.0.0.2",
        "--source-ip",
        "bogus",
    ])
    .unwrap_err();
    assert!(
        matches!(&e, PlanError::Sources { spec, .. } if spec == "bogus"),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("invalid value for --source-ip:"),
        "{e}"
    );
    // A loopback source cannot reach another host; an IPv6 target needs an IPv6 source.
    let m = err_text(plan(&[
        "-c",
        "1",
        "--source-ip",
        "127.0.0.2",
        "--target",
        "ws://192.0.2.1/",
    ]));
    assert!(m.contains("loopback"), "{m}");
    let m = err_text(plan(&[
        "-c",
        "1",
        "--source-ip",
        "127.0.0.2",
        "--target",
        "ws://[::1]/",
    ]));
    assert!(m.contains("IPv6"), "{m}");
}

// ---------------------------------------------------------------------------------------
// Handshake and auth.

#[test]
fn headers_origin_subprotocol() {
    let p = plan(&[
        "-c",
        "1",
        "--target",
        "ws://127.0.0.1:8080/",
        "-H",
        "X-A: 1",
        "--header",
        "Host: api.example.com",
        "--origin",
        "https://o.example",
        "--subprotocol",
        "chat",
    ])
    .unwrap();
    assert_eq!(p.handshake.headers, vec![("X-A".into(), "1".into())]);
    assert_eq!(p.targets[0].host_header, "api.example.com");
    assert_eq!(p.handshake.origin.as_deref(), Some("https://o.example"));
    assert_eq!(p.handshake.subprotocol.as_deref(), Some("chat"));

    for h in [
        "Upgrade: x",
        "Sec-WebSocket-Key: x",
        "Sec-WebSocket-Protocol: x",
        "Origin: x",
    ] {
        let m = err_text(plan(&["-c", "1", "-H", h]));
        assert!(m.starts_with("invalid value for --header:"), "{h}: {m}");
    }
    let m = err_text(plan(&[
        "-c",
        "1",
        "-H",
        "Authorization: Bearer x",
        "--token",
        "t",
    ]));
    assert!(m.contains("one way only"), "{m}");
    let e = run_args(&["-c", "1", "-H", "no colon"]).err().unwrap();
    assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
}

fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn auth_variants() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = temp_file(&dir, "rsa.pem", RSA_PEM);
    let ec = temp_file(&dir, "ec.pem", EC_PEM);
    let secret = temp_file(&dir, "secret", "from-file-secret\n");
    let sec1 = temp_file(&dir, "sec1.pem", EC_SEC1_PEM);
    let sec1 = sec1.to_str().unwrap();
    let junk = temp_file(
        &dir,
        "junk.pem",
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    );
    let (rsa, ec, secret, junk) = (
        rsa.to_str().unwrap(),
        ec.to_str().unwrap(),
        secret.to_str().unwrap(),
        junk.to_str().unwrap(),
    );

    let p = plan(&["-c", "1", "--token", "tok-123"]).unwrap();
    assert!(matches!(&p.handshake.auth, Auth::Bearer(t) if t.0 == "tok-123"));

    let p = plan(&["-c", "1", "--jwt-secret-file", secret]).unwrap();
    match &p.handshake.auth {
        Auth::Jwt {
            alg,
            key,
            claims,
            placement,
        } => {
            assert_eq!((*alg, key.0.as_str()), (JwtAlg::HS256, "from-file-secret"));
            assert_eq!(
                *claims,
                serde_json::json!({"sub": "user-{conn}", "exp": "{now+3600}"})
            );
            assert_eq!(*placement, JwtPlacement::Header);
        }
        other => panic!("{other:?}"),
    }

    for (argv, want) in [
        (
            vec!["--jwt-key-file", rsa, "--jwt-alg", "RS256"],
            JwtAlg::RS256,
        ),
        (vec!["--jwt-key-file", rsa], JwtAlg::RS256),
        (
            vec!["--jwt-key-file", ec, "--jwt-alg", "es256"],
            JwtAlg::ES256,
        ),
        (vec!["--jwt-key-file", ec], JwtAlg::ES256),
        (
            vec!["--jwt-secret", "k", "--jwt-alg", "HS256"],
            JwtAlg::HS256,
        ),
    ] {
        let mut full = vec!["-c", "1"];
        full.extend(argv.iter().copied());
        match plan(&full).unwrap().handshake.auth {
            Auth::Jwt { alg, .. } => assert_eq!(alg, want, "{argv:?}"),
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    let p = plan(&[
        "-c",
        "1",
        "--jwt-secret",
        "k",
        "--jwt-claims",
        r#"{"sub":"a"}"#,
        "--jwt-in",
        "query:t",
    ])
    .unwrap();
    assert!(
        matches!(&p.handshake.auth, Auth::Jwt { placement: JwtPlacement::Query(n), claims, .. }
        if n == "t" && claims == &serde_json::json!({"sub": "a"}))
    );

    let errors: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--jwt-key-file", ec, "--jwt-alg", "RS256"],
            "not an RSA private key",
        ),
        (
            vec!["--jwt-key-file", rsa, "--jwt-alg", "ES256"],
            "not a P-256 EC private key",
        ),
        (
            vec!["--jwt-key-file", junk],
            "neither an RSA nor a P-256 EC",
        ),
        (vec!["--jwt-key-file", sec1], "openssl pkcs8 -topk8"),
        (
            vec!["--jwt-key-file", sec1, "--jwt-alg", "ES256"],
            "openssl pkcs8 -topk8",
        ),
        (
            vec!["--jwt-key-file", rsa, "--jwt-alg", "HS256"],
            "--jwt-secret-file",
        ),
        (
            vec!["--jwt-secret", "k", "--jwt-alg", "RS256"],
            "--jwt-key-file",
        ),
        (vec!["--jwt-secret", ""], "empty"),
        (vec!["--jwt-claims", "{}"], "need a key"),
        (
            vec!["--jwt-key-file", "/nonexistent/key.pem"],
            "cannot read JWT key file",
        ),
    ];
    for (argv, want) in errors {
        let mut full = vec!["-c", "1"];
        full.extend(argv.iter().copied());
        let m = err_text(plan(&full));
        assert!(m.contains(want), "{argv:?}: {m}");
        assert!(!m.contains("BEGIN"), "{m}");
    }

    // clap-level validation and conflicts.
    for (argv, kind) in [
        (
            vec!["--token", "t", "--jwt-secret", "k"],
            clap::error::ErrorKind::ArgumentConflict,
        ),
        (
            vec!["--token", "t", "--jwt-claims", "{}"],
            clap::error::ErrorKind::ArgumentConflict,
        ),
        (
            vec!["--jwt-secret", "k", "--jwt-key-file", rsa],
            clap::error::ErrorKind::ArgumentConflict,
        ),
        (
            vec!["--jwt-secret", "k", "--jwt-claims", "[1]"],
            clap::error::ErrorKind::ValueValidation,
        ),
        (
            vec!["--jwt-secret", "k", "--jwt-in", "cookie"],
            clap::error::ErrorKind::ValueValidation,
        ),
        (
            vec!["--jwt-alg", "PS512"],
            clap::error::ErrorKind::ValueValidation,
        ),
    ] {
        let mut full = vec!["-c", "1"];
        full.extend(argv.iter().copied());
        assert_eq!(
            run_args(&full).err().map(|e| e.kind()),
            Some(kind),
            "{argv:?}"
        );
    }
}

#[test]
fn profile_auth_paths_are_relative_to_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    temp_file(&dir, "keys/ec.pem", EC_PEM);
    let prof = temp_file(
        &dir,
        "p.toml",
        "connections = 1\nreport_json = \"r.json\"\n[auth]\njwt_key_file = \"keys/ec.pem\"\njwt_in = \"query:jwt\"\n",
    );
    let p = plan(&[prof.to_str().unwrap()]).unwrap();
    assert_eq!(p.report_json, Some(dir.path().join("r.json")));
    assert!(matches!(
        p.handshake.auth,
        Auth::Jwt {
            alg: JwtAlg::ES256,
            ..
        }
    ));
    // A credential flag replaces the whole [auth] table (including jwt_in).
    let p = plan(&[prof.to_str().unwrap(), "--token", "t"]).unwrap();
    assert!(matches!(p.handshake.auth, Auth::Bearer(_)));
    // Two credentials in a profile conflict, with both locations.
    let m = err_text(plan_from_text(
        "connections = 1\n[auth]\ntoken = \"a\"\njwt_secret = \"b\"\n",
        &[],
    ));
    assert!(
        m.contains("profiles/x.toml:3:9 ('auth.token')") && m.contains("('auth.jwt_secret')"),
        "{m}"
    );
}

#[test]
fn secrets_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = temp_file(&dir, "rsa.pem", RSA_PEM);
    let token = "tok-SHOULD-NOT-LEAK";
    let args = run_args(&["-c", "1", "--token", token]).unwrap();
    assert!(!format!("{args:?}").contains(token));
    let p = build_plan(&args).unwrap();
    assert!(!format!("{p:?}").contains(token));

    let p = plan(&["-c", "1", "--jwt-secret", "jwt-SHOULD-NOT-LEAK"]).unwrap();
    assert!(!format!("{p:?}").contains("SHOULD-NOT-LEAK"));

    let p = plan(&["-c", "1", "--jwt-key-file", rsa.to_str().unwrap()]).unwrap();
    let dbg = format!("{p:?}");
    assert!(
        !dbg.contains("BEGIN") && !dbg.contains(&RSA_PEM[40..80]),
        "{dbg}"
    );

    // Errors about secrets name the setting, not the value.
    let m = err_text(plan_from_text(
        "connections = 1\n[auth]\ntoken = \"leak\\nme\"\n",
        &[],
    ));
    assert!(m.contains("'auth.token'") && !m.contains("leak"), "{m}");
    let m = err_text(plan(&[
        "-c",
        "1",
        "--token",
        "t",
        "-H",
        "Authorization: Bearer hidden-x",
    ]));
    assert!(!m.contains("hidden-x"), "{m}");
    let e = profile("[auth]\ntoken = \"abc-LEAK\"\njwt_alg = \"XX\"\n")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("abc-LEAK"), "{e}");
}

// ---------------------------------------------------------------------------------------
// serve and help.

#[test]
fn serve_args() {
    let dir = tempfile::tempdir().unwrap();
    let f = temp_file(&dir, "s", "serve-secret\r\n");
    let serve = |argv: &[&str]| {
        let mut full = vec!["wsscale", "serve"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Serve(s) => s,
            _ => unreachable!(),
        }
    };
    let a = serve(&[]);
    assert_eq!(a.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(a.threads, 0);
    assert_eq!(a.secret().unwrap(), None);
    let a = serve(&[
        "--jwt-secret-file",
        f.to_str().unwrap(),
        "--max-connections",
        "18k",
        "--echo-delay",
        "20ms",
    ]);
    assert_eq!(a.secret().unwrap().unwrap().0, "serve-secret");
    assert_eq!(a.max_connections, Some(18_000));
    assert_eq!(a.echo_delay, Some(ms(20)));
    assert!(serve(&["--jwt-secret", ""]).secret().is_err());
    let empty = temp_file(&dir, "e", "\n");
    assert!(
        serve(&["--jwt-secret-file", empty.to_str().unwrap()])
            .secret()
            .is_err()
    );
}

#[test]
fn help_teaches() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.clone().debug_assert();
    let run = cmd
        .find_subcommand_mut("run")
        .unwrap()
        .render_long_help()
        .to_string();
    for needle in [
        "Examples:",
        "wsscale run profiles/quick.toml",
        "--stage",
        "[default: 10s]",
        "[default: 16MiB]",
        "KiB",
        "--source-ip",
        "--jwt-in",
        "--message-rate",
        "--threshold",
        "--abort-on-fail",
        "--report-csv",
        "--first-message <TEXT|@FILE>",
        "1/10s",
        "99 a threshold failed",
        "profiles/progressive.toml",
    ] {
        assert!(run.contains(needle), "run --help lacks {needle:?}");
    }
    let serve = Cli::command()
        .find_subcommand_mut("serve")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        serve.contains("Examples:") && serve.contains("127.0.0.1:8080"),
        "{serve}"
    );
}

// ---------------------------------------------------------------------------------------
// Traffic, thresholds, progressive profiles.

#[test]
fn traffic_defaults_off() {
    let p = plan(&["-c", "10"]).unwrap();
    assert_eq!(p.traffic, wsscale::plan::Traffic::default());
    assert!(p.thresholds.is_empty());
    assert!(!p.abort_on_fail);
    assert_eq!(p.report_csv, None);
}

#[test]
fn traffic_flags() {
    let p = plan(&[
        "-c",
        "10",
        "--ping-interval",
        "15s",
        "--heartbeat-text",
        r#"{"type":"ping"}\n"#,
        "--heartbeat-expect",
        "pong",
        "--first-message",
        r"SUBSCRIBE\r\n\tx\\y",
        "--first-message-expect",
        "OK",
        "--message-rate",
        "1/10s",
        "--message-size",
        "1KiB",
        "--message-text",
        r#"{"conn":{conn},"seq":{seq},"ts":{ts}}"#,
        "--report-csv",
        "out.csv",
    ])
    .unwrap();
    let t = &p.traffic;
    let ping = t.ping.as_ref().unwrap();
    assert_eq!((ping.interval, ping.timeout), (s(15), s(10)));
    let hb = t.heartbeat.as_ref().unwrap();
    assert_eq!(hb.text, b"{\"type\":\"ping\"}\n");
    assert_eq!(hb.interval, s(30));
    assert_eq!(hb.expect.as_deref(), Some(&b"pong"[..]));
    assert_eq!(hb.timeout, s(10));
    assert_eq!(
        t.first_message.as_deref(),
        Some(&b"SUBSCRIBE\r\n\tx\\y"[..])
    );
    assert_eq!(t.first_message_expect.as_deref(), Some(&b"OK"[..]));
    let m = t.message.as_ref().unwrap();
    assert!((m.rate - 0.1).abs() < 1e-12, "{}", m.rate);
    assert_eq!(m.size, 1024);
    assert_eq!(
        m.text.as_deref(),
        Some(r#"{"conn":{conn},"seq":{seq},"ts":{ts}}"#)
    );
    assert_eq!(m.timeout, s(10));
    assert_eq!(p.report_csv, Some(PathBuf::from("out.csv")));

    let p = plan(&[
        "-c",
        "10",
        "--ping-interval",
        "1s",
        "--ping-timeout",
        "500ms",
        "--heartbeat-text",
        "hb",
        "--heartbeat-interval",
        "5s",
        "--heartbeat-timeout",
        "2s",
        "--message-rate",
        "0.5/s",
        "--message-timeout",
        "3s",
    ])
    .unwrap();
    assert_eq!(p.traffic.ping.as_ref().unwrap().timeout, ms(500));
    let hb = p.traffic.heartbeat.as_ref().unwrap();
    assert_eq!(
        (hb.interval, hb.timeout, hb.expect.clone()),
        (s(5), s(2), None)
    );
    let m = p.traffic.message.as_ref().unwrap();
    assert_eq!(
        (m.rate, m.size, m.text.clone(), m.timeout),
        (0.5, 64, None, s(3))
    );
}

#[test]
fn message_rates() {
    for (arg, per_s) in [
        ("10/s", 10.0),
        ("1/10s", 0.1),
        ("0.5/s", 0.5),
        ("600/m", 10.0),
    ] {
        let p = plan(&["-c", "1", "--message-rate", arg]).unwrap();
        let got = p.traffic.message.unwrap().rate;
        assert!((got - per_s).abs() < 1e-12, "{arg}: {got}");
    }
    let e = run_args(&["-c", "1", "--message-rate", "ten"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(e.to_string().contains("--message-rate"), "{e}");
    let m = err_text(plan(&["-c", "1", "--message-rate", "1000000/s"]));
    assert!(m.contains("invalid value for --message-rate"), "{m}");
}

#[test]
fn message_size_bounds() {
    let m = err_text(plan(&[
        "-c",
        "1",
        "--message-rate",
        "1/s",
        "--message-size",
        "31",
    ]));
    assert!(
        m.starts_with("invalid value for --message-size: 31 bytes is too small"),
        "{m}"
    );
    assert!(m.contains("at least 32"), "{m}");
    plan(&["-c", "1", "--message-rate", "1/s", "--message-size", "32"]).unwrap();
    let m = err_text(plan(&[
        "-c",
        "1",
        "--message-rate",
        "1/s",
        "--message-size",
        "2MiB",
        "--max-frame",
        "1MiB",
    ]));
    assert!(m.contains("--max-frame"), "{m}");
    let m = err_text(plan_from_text(
        "connections = 1\nmessage_rate = \"1/s\"\nmessage_size = 8\n",
        &[],
    ));
    assert!(
        m.starts_with(
            "profiles/x.toml:3:16: invalid value for 'message_size': 8 bytes is too small"
        ),
        "{m}"
    );
}

#[test]
fn escapes() {
    assert_eq!(unescape(r"a\r\nb").unwrap(), "a\r\nb");
    assert_eq!(unescape(r"\t\\\@x").unwrap(), "\t\\@x");
    let m = err_text(plan(&["-c", "1", "--heartbeat-text", r"bad\q"]));
    assert!(
        m.starts_with("invalid value for --heartbeat-text: unknown escape \"\\q\""),
        "{m}"
    );
    assert!(m.contains(r"\r \n \t \0 \\ \@ \xNN"), "{m}");
    let m = err_text(plan(&["-c", "1", "--first-message", "trailing\\"]));
    assert!(m.contains("lone backslash"), "{m}");
    // `\@` sends a text that starts with '@' instead of naming a file.
    let p = plan(&["-c", "1", "--first-message", r"\@all hello"]).unwrap();
    assert_eq!(p.traffic.first_message.as_deref(), Some(&b"@all hello"[..]));
    // Message templates are not unescaped (JSON may hold \").
    let p = plan(&[
        "-c",
        "1",
        "--message-rate",
        "1/s",
        "--message-text",
        r#"{"a":"\"{seq}"}"#,
    ])
    .unwrap();
    assert_eq!(
        p.traffic.message.unwrap().text.as_deref(),
        Some(r#"{"a":"\"{seq}"}"#)
    );
}

#[test]
fn first_message_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = temp_file(&dir, "login.json", "{\"op\":\"login\"}\\n raw\n");
    let arg = format!("@{}", f.display());
    let p = plan(&["-c", "1", "--first-message", &arg]).unwrap();
    // A file is sent as it is: no escapes resolved.
    assert_eq!(
        p.traffic.first_message.as_deref(),
        Some(&b"{\"op\":\"login\"}\\n raw\n"[..])
    );
    let m = err_text(plan(&["-c", "1", "--first-message", "@/does/not/exist"]));
    assert!(
        m.contains("cannot read first message file /does/not/exist"),
        "{m}"
    );
    let empty = temp_file(&dir, "empty", "");
    let m = err_text(plan(&[
        "-c",
        "1",
        "--first-message",
        &format!("@{}", empty.display()),
    ]));
    assert!(m.contains("is empty"), "{m}");

    // In a profile, relative to the profile's directory.
    let prof = temp_file(
        &dir,
        "p.toml",
        "connections = 1\nfirst_message = \"@login.json\"\nfirst_message_expect = \"ok\\\\r\\\\n\"\n",
    );
    let p = plan(&[prof.to_str().unwrap()]).unwrap();
    assert!(p.traffic.first_message.unwrap().starts_with(b"{\"op\""));
    assert_eq!(
        p.traffic.first_message_expect.as_deref(),
        Some(&b"ok\r\n"[..])
    );
}

#[test]
fn refining_settings_need_their_traffic() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--ping-timeout", "1s"],
            "invalid value for --ping-timeout: has no effect without --ping-interval",
        ),
        (
            &["--heartbeat-expect", "x"],
            "invalid value for --heartbeat-expect: has no effect without --heartbeat-text",
        ),
        (
            &["--heartbeat-interval", "5s"],
            "invalid value for --heartbeat-interval: has no effect without --heartbeat-text",
        ),
        (
            &["--message-size", "64"],
            "invalid value for --message-size: has no effect without --message-rate",
        ),
        (
            &["--message-text", "x"],
            "invalid value for --message-text: has no effect without --message-rate",
        ),
        (
            &["--message-timeout", "1s"],
            "invalid value for --message-timeout: has no effect without --message-rate",
        ),
        (
            &["--ping-interval", "0", "--ping-timeout", "1s"],
            "invalid value for --ping-timeout: has no effect: pings are off (--ping-interval is 0)",
        ),
        (
            &["--message-rate", "0", "--message-size", "64"],
            "invalid value for --message-size: has no effect: timed messages are off (--message-rate is 0)",
        ),
        (
            &["--ping-interval", "1s", "--ping-timeout", "0"],
            "invalid value for --ping-timeout: must be longer than 0",
        ),
        (
            &["--heartbeat-text", ""],
            "invalid value for --heartbeat-text: the text is empty",
        ),
        (
            &["--abort-on-fail"],
            "invalid value for --abort-on-fail: there is no threshold to check",
        ),
    ];
    for (flags, needle) in cases {
        let mut argv = vec!["-c", "1"];
        argv.extend_from_slice(flags);
        let m = err_text(plan(&argv));
        assert!(m.starts_with(needle), "{flags:?}: {m}");
    }
}

#[test]
fn zero_turns_profile_traffic_off() {
    let text = "connections = 1\nping_interval = \"10s\"\nping_timeout = \"1s\"\nheartbeat_text = \"hb\"\n\
                message_rate = \"1/s\"\nmessage_size = 128\n";
    let p = plan_from_text(text, &[]).unwrap();
    assert!(p.traffic.ping.is_some() && p.traffic.heartbeat.is_some());
    assert_eq!(p.traffic.message.as_ref().unwrap().size, 128);
    let p = plan_from_text(
        text,
        &[
            "--ping-interval",
            "0",
            "--heartbeat-interval",
            "0",
            "--message-rate",
            "0",
        ],
    )
    .unwrap();
    assert_eq!(p.traffic, wsscale::plan::Traffic::default());
    // Flags still override the profile value by value.
    let p = plan_from_text(text, &["--message-rate", "5/s", "--ping-timeout", "2s"]).unwrap();
    assert_eq!(p.traffic.message.as_ref().unwrap().rate, 5.0);
    assert_eq!(p.traffic.message.as_ref().unwrap().size, 128);
    assert_eq!(p.traffic.ping.as_ref().unwrap().timeout, s(2));
}

#[test]
fn traffic_profile_keys() {
    let text = r#"
connections = 10
ping_interval = "20s"
ping_timeout = "5s"
heartbeat_text = "{\"op\":\"hb\"}\\n"
heartbeat_interval = "15s"
heartbeat_expect = "hb-ack"
heartbeat_timeout = "3s"
first_message = "LOGIN\\r\\n"
first_message_expect = "WELCOME"
message_rate = 2
message_size = "256"
message_text = "{seq}:{ts}"
message_timeout = "4s"
report_csv = "out/ts.csv"
abort_on_fail = true

[thresholds]
connect_success_rate = ">=0.95"
"message_rtt_ms.p99" = ["<200", ">0"]
dropped = "== 0"
"#;
    let p = plan_from_text(text, &["--threshold", "failed<5"]).unwrap();
    let t = &p.traffic;
    assert_eq!(t.ping.as_ref().unwrap().interval, s(20));
    assert_eq!(t.ping.as_ref().unwrap().timeout, s(5));
    let hb = t.heartbeat.as_ref().unwrap();
    assert_eq!(hb.text, b"{\"op\":\"hb\"}\n");
    assert_eq!((hb.interval, hb.timeout), (s(15), s(3)));
    assert_eq!(hb.expect.as_deref(), Some(&b"hb-ack"[..]));
    assert_eq!(t.first_message.as_deref(), Some(&b"LOGIN\r\n"[..]));
    assert_eq!(t.first_message_expect.as_deref(), Some(&b"WELCOME"[..]));
    let m = t.message.as_ref().unwrap();
    assert_eq!((m.rate, m.size, m.timeout), (2.0, 256, s(4)));
    assert_eq!(m.text.as_deref(), Some("{seq}:{ts}"));
    assert_eq!(p.report_csv, Some(PathBuf::from("profiles/out/ts.csv")));
    assert!(p.abort_on_fail);
    // Profile thresholds in document order, then the flags'.
    let exprs: Vec<&str> = p.thresholds.iter().map(|t| t.expr.as_str()).collect();
    assert_eq!(
        exprs,
        vec![
            "connect_success_rate>=0.95",
            "message_rtt_ms.p99<200",
            "message_rtt_ms.p99>0",
            "dropped== 0",
            "failed<5"
        ]
    );
    assert_eq!(p.thresholds[3].value, 0.0);
    // A float rate and the CLI report path.
    let p = plan_from_text(
        "connections = 1\nmessage_rate = 0.25\n",
        &["--report-csv", "x.csv"],
    )
    .unwrap();
    assert_eq!(p.traffic.message.unwrap().rate, 0.25);
    assert_eq!(p.report_csv, Some(PathBuf::from("x.csv")));
}

#[test]
fn threshold_flag_errors() {
    let e = run_args(&["-c", "1", "--threshold", "nosuch<1"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    let m = e.to_string();
    assert!(m.contains("--threshold"), "{m}");
    assert!(m.contains("unknown metric \"nosuch\""), "{m}");
    assert!(
        m.contains("connect_success_rate") && m.contains("message_rtt_ms"),
        "{m}"
    );
    let e = run_args(&["-c", "1", "--threshold", "dropped=0"]).unwrap_err();
    assert!(e.to_string().contains("write '=='"), "{e}");
    let a = run_args(&[
        "-c",
        "1",
        "--threshold",
        "dropped==0",
        "--threshold",
        "failed < 3",
    ])
    .unwrap();
    assert_eq!(a.thresholds.len(), 2);
    assert_eq!(a.thresholds[1].metric, "failed");
}

#[test]
fn threshold_profile_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        (
            "connections = 1\n[thresholds]\nnosuch = \"<1\"\n",
            "profiles/x.toml:3:10: invalid value for 'thresholds.nosuch': \"nosuch<1\": unknown metric \"nosuch\"",
        ),
        (
            "connections = 1\n[thresholds]\ndropped = \"0\"\n",
            "profiles/x.toml:3:11: invalid value for 'thresholds.dropped': \"0\" does not start with an operator",
        ),
        (
            "connections = 1\n[thresholds]\ndropped = 0\n",
            "profiles/x.toml:3:11: invalid value for 'thresholds.dropped': expected a condition string",
        ),
        (
            "connections = 1\n[thresholds]\ndropped = [1]\n",
            "profiles/x.toml:3:11: invalid value for 'thresholds.dropped': every entry of the list must be a string",
        ),
        (
            "connections = 1\n[thresholds]\ndropped = \"<x\"\n",
            "profiles/x.toml:3:11: invalid value for 'thresholds.dropped': \"dropped<x\": \"x\" is not a number",
        ),
        (
            "connections = 1\nmessage_rate = \"fast\"\n",
            "profiles/x.toml:2:16: invalid value for 'message_rate': \"fast\" is not a rate",
        ),
        (
            "connections = 1\nheartbeat_expect = \"x\"\n",
            "profiles/x.toml:2:20: invalid value for 'heartbeat_expect': has no effect without --heartbeat-text / heartbeat_text",
        ),
        (
            "connections = 1\nheartbeat_text = \"a\\\\zb\"\n",
            "profiles/x.toml:2:18: invalid value for 'heartbeat_text': unknown escape \"\\z\"",
        ),
        (
            "connections = 1\nabort_on_fail = true\n",
            "profiles/x.toml:2:17: invalid value for 'abort_on_fail': there is no threshold to check",
        ),
        (
            "connections = 1\ncool_down = \"5s\"\n",
            "profiles/x.toml:2:13: invalid value for 'cool_down': 'cool_down' only applies to a profile with 'steps'",
        ),
    ];
    for (text, needle) in cases {
        let m = err_text(plan_from_text(text, &[]));
        assert!(
            m.starts_with(needle),
            "{text:?}:\n  {m}\n  expected {needle}"
        );
    }
}

#[test]
fn shipped_profiles_have_message_cadence_and_thresholds() {
    let cases: &[(&str, f64, &[&str])] = &[
        (
            "quick",
            1.0 / 5.0,
            &["connect_success_rate>=1.0", "message_rtt_ms.p99<5"],
        ),
        (
            "medium",
            1.0 / 10.0,
            &["connect_success_rate>=0.99", "message_rtt_ms.p99<10"],
        ),
        (
            "stress",
            1.0 / 15.0,
            &["connect_success_rate>=0.95", "message_rtt_ms.p99<20"],
        ),
    ];
    for (name, rate, exprs) in cases {
        let p = plan(&[&format!("profiles/{name}.toml")]).unwrap();
        let m = p.traffic.message.as_ref().unwrap();
        assert!((m.rate - rate).abs() < 1e-12, "{name}: {}", m.rate);
        let got: Vec<&str> = p.thresholds.iter().map(|t| t.expr.as_str()).collect();
        assert_eq!(got, *exprs, "{name}");
    }
    let p = plan(&["profiles/throughput.toml"]).unwrap();
    assert_eq!(p.peak_connections(), 1000);
    assert_eq!(p.stages[1], st(s(600), 1000));
    let m = p.traffic.message.as_ref().unwrap();
    assert_eq!((m.rate, m.size), (10.0, 1024));
    // 1,000 connections × 10/s = 10,000 msg/s.
    assert_eq!(p.peak_connections() as f64 * m.rate, 10_000.0);
    assert!(!p.thresholds.is_empty());
}

#[test]
fn progressive_profile() {
    let args = run_args(&["profiles/progressive.toml", "--threshold", "dropped==0"]).unwrap();
    let prog = build_progressive(&args)
        .unwrap()
        .expect("a progressive profile");
    let names: Vec<&str> = prog.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["quick", "medium", "stress"]);
    assert_eq!(prog.cool_down, s(30));
    assert!(!prog.continue_on_fail);
    assert_eq!(prog.steps[0].profile, PathBuf::from("profiles/quick.toml"));
    assert_eq!(prog.steps[2].plan.peak_connections(), 5000);
    // Flags apply to every step, after each step's own thresholds.
    for step in &prog.steps {
        assert_eq!(step.plan.thresholds.last().unwrap().expr, "dropped==0");
        assert_eq!(step.plan.thresholds.len(), 3);
        assert_eq!(step.plan.report_json, None);
    }
    // Not a plan of its own.
    let m = err_text(build_plan(&args));
    assert!(m.contains("progressive profile"), "{m}");
    // An ordinary profile is not progressive.
    let args = run_args(&["profiles/quick.toml"]).unwrap();
    assert!(build_progressive(&args).unwrap().is_none());
    assert!(
        build_progressive(&run_args(&["-c", "1"]).unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn progressive_reports_and_options() {
    let dir = tempfile::tempdir().unwrap();
    temp_file(
        &dir,
        "a.toml",
        "connections = 1\nreport_json = \"own.json\"\n",
    );
    temp_file(&dir, "b.toml", "connections = 2\n");
    let prog_path = temp_file(
        &dir,
        "prog.toml",
        "description = \"two\"\nsteps = [\"a.toml\", \"b.toml\"]\ncontinue_on_fail = true\nreport_json = \"all.json\"\n",
    );
    let args = run_args(&[prog_path.to_str().unwrap(), "--report-csv", "ts.csv"]).unwrap();
    let prog = build_progressive(&args).unwrap().unwrap();
    assert_eq!(prog.cool_down, Duration::ZERO);
    assert!(prog.continue_on_fail);
    assert_eq!(prog.description.as_deref(), Some("two"));
    assert_eq!(prog.report_json, Some(dir.path().join("all.json")));
    assert_eq!(
        prog.steps[0].plan.report_json, None,
        "a step's own report_json is ignored"
    );
    assert_eq!(
        prog.steps[0].plan.report_csv,
        Some(PathBuf::from("ts-a.csv"))
    );
    assert_eq!(
        prog.steps[1].plan.report_csv,
        Some(PathBuf::from("ts-b.csv"))
    );
    assert_eq!(prog.steps[1].plan.peak_connections(), 2);
}

#[test]
fn progressive_profile_errors() {
    let dir = tempfile::tempdir().unwrap();
    temp_file(&dir, "a.toml", "connections = 1\n");
    temp_file(&dir, "nested.toml", "steps = [\"a.toml\"]\n");
    let prog = |text: &str| {
        let p = temp_file(&dir, "prog.toml", text);
        Profile::load(&p)
    };

    // Only the progressive keys.
    let m = prog("steps = [\"a.toml\"]\nconnections = 5\n")
        .unwrap_err()
        .to_string();
    assert!(m.ends_with("prog.toml:2:1: 'connections' cannot be set in a profile with 'steps'; a progressive profile only takes description, steps, cool_down, continue_on_fail, report_json, report_csv — put 'connections' in the step profiles, or pass it as a flag (flags apply to every step)") || m.contains("prog.toml:2:1: 'connections' cannot be set"), "{m}");
    let m = prog("steps = [\"a.toml\"]\n[thresholds]\ndropped = \"==0\"\n")
        .unwrap_err()
        .to_string();
    assert!(m.contains(":2:1: 'thresholds' cannot be set"), "{m}");
    let m = prog("steps = []\n").unwrap_err().to_string();
    assert!(m.contains("the step list is empty"), "{m}");

    let build = |text: &str, argv: &[&str]| {
        let p = prog(text).unwrap();
        build_progressive_with(&run_args(argv).unwrap(), &p).map(|_| ())
    };
    let m = build("steps = [\"missing.toml\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("invalid value for 'steps': cannot read step profile"),
        "{m}"
    );
    assert!(m.contains("missing.toml"), "{m}");
    let m = build("steps = [\"nested.toml\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(m.contains("steps cannot be nested"), "{m}");
    // Load-shape flags override every step (they used to be refused with a steps' profile).
    build("steps = [\"a.toml\"]\n", &["-c", "5"]).expect("-c applies to every step");
    build("steps = [\"a.toml\"]\n", &["--hold", "5s"]).expect("--hold applies to every step");
    // A bad step is reported before anything runs.
    temp_file(&dir, "bad.toml", "connections = 1\nmessage_size = 64\n");
    let m = build("steps = [\"a.toml\", \"bad.toml\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("bad.toml:2:16: invalid value for 'message_size'"),
        "{m}"
    );
}

#[test]
fn a_plan_builds_from_overrides_without_clap() {
    let o = Overrides {
        connections: Some(10),
        ramp: Some(Duration::from_secs(1)),
        hold: Some(Duration::ZERO),
        targets: vec!["ws://127.0.0.1:9/ws".into()],
        ..Default::default()
    };
    let p = build_plan(&o).expect("plan from Overrides");
    assert_eq!(p.peak_connections(), 10);
    assert_eq!(p.targets.len(), 1);
}

/// The "bad profile" example of the docs (docs/run.md): that profile really is refused, with
/// exactly the message shown there (the binary prints it after `error: `).
#[test]
fn documented_bad_duration_example_fails_as_shown() {
    const PROFILE: &str =
        "connections = 100\nhold = \"30s\"\nramp_down = \"5s\"\nramp = \"ten seconds\"\n";
    const MESSAGE: &str = r#"profiles/x.toml:4:8: invalid value for 'ramp': "ten seconds" is not a duration: expected number at 0 (expected e.g. "10s", "1m30s", "500ms")"#;
    assert_eq!(err_text(plan_from_text(PROFILE, &[])), MESSAGE);
    // The forms the docs list next to it are accepted.
    let accepted = "500ms 10s 1m30s 1.5s 2h 250us 1w";
    for ok in accepted
        .split(' ')
        .chain(["1m 30s", "10 seconds", "2 minutes", "3 hours"])
    {
        assert!(parse_duration(ok).is_ok(), "{ok}");
    }
    // And the docs show this profile with this message, wherever the example lives.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        docs.extend(
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    let shown = docs.iter().any(|p| {
        std::fs::read_to_string(p)
            .is_ok_and(|t| t.contains(PROFILE) && t.contains(&format!("error: {MESSAGE}")))
    });
    assert!(
        shown,
        "no README.md or docs/*.md shows the bad-profile example with its message"
    );
}

// ---------------------------------------------------------------------------------------
// Progressive runs: every flag overrides every step.

/// (connections, ramp, hold, ramp_down) of profiles/quick, medium and stress, in step order.
const PROGRESSIVE_STEPS: [(u64, u64, u64, u64); 3] =
    [(100, 10, 30, 5), (1000, 30, 120, 10), (5000, 60, 300, 30)];

fn progressive_of(argv: &[&str]) -> wsscale::plan::build::Progressive {
    let mut full = vec!["profiles/progressive.toml"];
    full.extend_from_slice(argv);
    build_progressive(&run_args(&full).unwrap())
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .expect("a progressive profile")
}

#[test]
fn progressive_ramp_and_hold_shorten_every_step() {
    let prog = progressive_of(&["--ramp", "1s", "--hold", "2s"]);
    assert_eq!(prog.steps.len(), 3);
    for (step, (n, _, _, ramp_down)) in prog.steps.iter().zip(PROGRESSIVE_STEPS) {
        // The step's own connection count and ramp-down; the flags' ramp and hold.
        assert_eq!(
            step.plan.stages,
            vec![st(s(1), n), st(s(2), n), st(s(ramp_down), 0)],
            "{}",
            step.name
        );
        // Everything else is still the step's: its two thresholds.
        assert_eq!(step.plan.thresholds.len(), 2, "{}", step.name);
    }
    assert_eq!(prog.cool_down, s(30), "the profile's cool_down is kept");

    // --ramp-down 0s drops the closing stage, as for a single profile (one shape rule).
    let prog = progressive_of(&["--ramp", "200ms", "--hold", "200ms", "--ramp-down", "0s"]);
    for (step, (n, ..)) in prog.steps.iter().zip(PROGRESSIVE_STEPS) {
        assert_eq!(step.plan.stages, shape(n, ms(200), ms(200), Duration::ZERO));
        assert_eq!(step.plan.stages, vec![st(ms(200), n), st(ms(200), n)]);
    }
}

#[test]
fn progressive_cool_down_flag_overrides_the_profile() {
    assert_eq!(progressive_of(&[]).cool_down, s(30));
    assert_eq!(
        progressive_of(&["--cool-down", "0s"]).cool_down,
        Duration::ZERO
    );
    assert_eq!(progressive_of(&["--cool-down", "1m30s"]).cool_down, s(90));
    // Parsed by clap with the duration parser.
    let e = run_args(&["profiles/progressive.toml", "--cool-down", "ten"]).unwrap_err();
    assert!(e.to_string().contains("--cool-down"), "{e}");
    // Without steps there is nothing to pause between: refused, not ignored.
    for argv in [
        &["profiles/quick.toml", "--cool-down", "1s"][..],
        &["-c", "1", "--cool-down", "1s"][..],
    ] {
        let m = build_progressive(&run_args(argv).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("invalid value for --cool-down:") && m.contains("progressive profile"),
            "{m}"
        );
    }
}

#[test]
fn progressive_connections_and_stages_set_every_step() {
    // -c replaces each step's count; ramp/hold/ramp-down fall back to the step's own.
    let prog = progressive_of(&["-c", "5"]);
    for (step, (_, ramp, hold, ramp_down)) in prog.steps.iter().zip(PROGRESSIVE_STEPS) {
        assert_eq!(step.plan.peak_connections(), 5, "{}", step.name);
        assert_eq!(
            step.plan.stages,
            vec![st(s(ramp), 5), st(s(hold), 5), st(s(ramp_down), 0)]
        );
    }
    let prog = progressive_of(&["-c", "5", "--hold", "1s"]);
    for (step, (_, ramp, _, ramp_down)) in prog.steps.iter().zip(PROGRESSIVE_STEPS) {
        assert_eq!(
            step.plan.stages,
            vec![st(s(ramp), 5), st(s(1), 5), st(s(ramp_down), 0)]
        );
    }
    // --stage replaces every step's shape.
    let prog = progressive_of(&["--stage", "1s:7", "--stage", "2s:0"]);
    for step in &prog.steps {
        assert_eq!(step.plan.stages, vec![st(s(1), 7), st(s(2), 0)]);
    }
}

#[test]
fn progressive_shape_flags_against_a_step_with_stages() {
    let dir = tempfile::tempdir().unwrap();
    temp_file(&dir, "simple.toml", "connections = 4\nramp = \"3s\"\n");
    temp_file(
        &dir,
        "staged.toml",
        "[[stages]]\nduration = \"1m\"\ntarget = 10\n",
    );
    let prog_path = temp_file(
        &dir,
        "prog.toml",
        "steps = [\"simple.toml\", \"staged.toml\"]\n",
    );
    let prog = |argv: &[&str]| {
        let mut full = vec![prog_path.to_str().unwrap()];
        full.extend_from_slice(argv);
        build_progressive(&run_args(&full).unwrap())
    };
    // The single-profile rule: --ramp without -c cannot adjust [[stages]]; the error names
    // the step's file.
    let m = prog(&["--ramp", "1s"]).unwrap_err().to_string();
    assert!(
        m.contains("--ramp cannot be combined with the [[stages]] of") && m.contains("staged.toml"),
        "{m}"
    );
    assert!(m.contains("-c N"), "{m}");
    // With -c both steps take the flags' shape.
    let p = prog(&["-c", "3", "--ramp", "1s"]).unwrap().unwrap();
    assert_eq!(
        p.steps[0].plan.stages,
        vec![st(s(1), 3), st(s(30), 3), st(s(5), 0)]
    );
    assert_eq!(
        p.steps[1].plan.stages,
        vec![st(s(1), 3), st(s(30), 3), st(s(5), 0)]
    );
    // Without shape flags each step keeps its own.
    let p = prog(&[]).unwrap().unwrap();
    assert_eq!(p.steps[0].plan.stages[0], st(s(3), 4));
    assert_eq!(p.steps[1].plan.stages, vec![st(s(60), 10)]);
}

#[test]
fn profiles_carry_the_session_protocol() {
    let p = plan_from_text(
        "targets = [\"ws://127.0.0.1:9/\"]\nconnections = 1\nmessage_rate = \"1/s\"\n\
         protocol = \"socketio\"\nnamespace = \"/chat\"\nevent = \"tick\"\n\
         replies = [\"re:^ping (\\\\d+)=>pong {1}\"]\nopen = [\"send:42/chat,[\\\"join\\\"]\", \"expect:*joined\"]\n",
        &[],
    )
    .unwrap();
    let s = &p.traffic.session;
    assert_eq!(s.protocol.as_deref(), Some("socketio"));
    assert_eq!(
        p.targets[0].path_and_query,
        "/socket.io/?EIO=4&transport=websocket"
    );
    // The preset's 3 steps, then the profile's 2.
    assert_eq!(s.open.len(), 5);
    assert!(
        s.replies[0].pattern.matches(b"ping 7"),
        "profile rules come first"
    );
    assert!(
        p.traffic
            .message
            .as_ref()
            .unwrap()
            .text
            .as_deref()
            .unwrap()
            .starts_with("42/chat,[\"tick\"")
    );
    // A flag replaces the profile's value.
    let p = plan_from_text(
        "targets = [\"ws://127.0.0.1:9/\"]\nconnections = 1\nprotocol = \"socketio\"\n",
        &["--protocol", "nats"],
    )
    .unwrap();
    assert_eq!(p.traffic.session.protocol.as_deref(), Some("nats"));
    let e = plan_from_text(
        "targets = [\"ws://127.0.0.1:9/\"]\nconnections = 1\nopen = [\"hello\"]\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("profiles/x.toml:3") && e.contains("send: or expect:"),
        "{e}"
    );
}

#[test]
fn first_messages_and_heartbeats_take_the_payload_notation() {
    let p = plan(&[
        "-c",
        "1",
        "--first-message",
        r"CONNECT\n\n\0",
        "--first-message-expect",
        r"\x1e",
        "--heartbeat-text",
        "hex:c0 00",
        "--heartbeat-expect",
        "hex:d0 00",
    ])
    .unwrap();
    assert_eq!(
        p.traffic.first_message.as_deref(),
        Some(&b"CONNECT\n\n\0"[..])
    );
    assert_eq!(
        p.traffic.first_message_expect.as_deref(),
        Some(&b"\x1e"[..])
    );
    let hb = p.traffic.heartbeat.unwrap();
    assert_eq!((hb.text.as_slice(), hb.binary), (&[0xc0u8, 0][..], true));
    assert_eq!(hb.expect.as_deref(), Some(&[0xd0u8, 0][..]));
    let m = err_text(plan(&["-c", "1", "--first-message", "hex:00"]));
    assert!(m.contains("--send binary:"), "{m}");
}
