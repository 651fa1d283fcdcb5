//! `--source-ip` spec parsing: the accepted forms, their expansions, and error messages that
//! name the spec and say what to write instead.

mod util;

use std::net::IpAddr;

use util::{ip, ips};
use wsscale::plan::source_spec::{
    MAX_SOURCES, SourceError, check_bindable, parse_source, parse_sources,
};

#[test]
fn accepted_forms_expand_as_documented() {
    // (spec, expected count, first, last)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("127.0.0.2", 1, "127.0.0.2", "127.0.0.2"),
        ("  127.0.0.2  ", 1, "127.0.0.2", "127.0.0.2"),
        ("::1", 1, "::1", "::1"),
        ("[::1]", 1, "::1", "::1"),
        ("127.0.0.2-127.0.0.9", 8, "127.0.0.2", "127.0.0.9"),
        ("127.0.0.2 - 127.0.0.9", 8, "127.0.0.2", "127.0.0.9"),
        ("127.0.0.5-127.0.0.5", 1, "127.0.0.5", "127.0.0.5"),
        ("10.0.0.250-10.0.1.3", 10, "10.0.0.250", "10.0.1.3"),
        ("10.0.0.0/28", 14, "10.0.0.1", "10.0.0.14"),
        ("10.0.0.0/30", 2, "10.0.0.1", "10.0.0.2"),
        ("10.0.0.7/32", 1, "10.0.0.7", "10.0.0.7"),
        ("10.0.0.6/31", 2, "10.0.0.6", "10.0.0.7"),
        ("10.0.0.0/16", 65_534, "10.0.0.1", "10.0.255.254"),
        ("fd00::1-fd00::10", 16, "fd00::1", "fd00::10"),
        ("[fd00::1]-[fd00::3]", 3, "fd00::1", "fd00::3"),
        ("fd00::ffff-fd00::1:1", 3, "fd00::ffff", "fd00::1:1"),
        ("fd00::/120", 256, "fd00::", "fd00::ff"),
        ("fd00::/112", MAX_SOURCES, "fd00::", "fd00::ffff"),
        ("fd00::5/128", 1, "fd00::5", "fd00::5"),
        ("127.0.0.2,127.0.0.3", 2, "127.0.0.2", "127.0.0.3"),
        (" 127.0.0.2 , ::1 ,10.0.0.0/30", 4, "127.0.0.2", "10.0.0.2"),
        (
            "127.0.0.2,127.0.0.2-127.0.0.4,127.0.0.3",
            3,
            "127.0.0.2",
            "127.0.0.4",
        ),
        ("127.0.0.2,", 1, "127.0.0.2", "127.0.0.2"),
    ];
    for &(spec, count, first, last) in cases {
        let addrs = parse_source(spec).unwrap_or_else(|e| panic!("{spec:?} failed: {e}"));
        assert_eq!(addrs.len(), count, "count of {spec:?}");
        assert_eq!(addrs.first(), Some(&ip(first)), "first of {spec:?}");
        assert_eq!(addrs.last(), Some(&ip(last)), "last of {spec:?}");
    }
}

#[test]
fn cidr_28_is_the_14_hosts_in_order() {
    let expected: Vec<IpAddr> = (1..=14).map(|i| ip(&format!("10.0.0.{i}"))).collect();
    assert_eq!(parse_source("10.0.0.0/28").unwrap(), expected);
}

#[test]
fn duplicates_removed_keeping_first_occurrence() {
    assert_eq!(
        parse_source("127.0.0.3,127.0.0.2-127.0.0.4,127.0.0.3").unwrap(),
        ips(&["127.0.0.3", "127.0.0.2", "127.0.0.4"])
    );
    let specs = vec![
        "127.0.0.4".to_owned(),
        "127.0.0.2-127.0.0.5".to_owned(),
        "[::1],::1".to_owned(),
    ];
    assert_eq!(
        parse_sources(&specs).unwrap(),
        ips(&["127.0.0.4", "127.0.0.2", "127.0.0.3", "127.0.0.5", "::1"])
    );
}

#[test]
fn no_specs_is_an_empty_pool() {
    assert!(parse_sources(&[]).unwrap().is_empty());
}

#[test]
fn errors_name_the_spec_and_the_problem() {
    // (spec, variant check, fragments the message must contain)
    type Check = fn(&SourceError) -> bool;
    let cases: &[(&str, Check, &[&str])] = &[
        (
            "127.0.0.9-127.0.0.2",
            |e| matches!(e, SourceError::ReversedRange { .. }),
            &["after its end", "127.0.0.2-127.0.0.9"],
        ),
        (
            "127.0.0.1-::1",
            |e| matches!(e, SourceError::MixedFamilies { .. }),
            &["mixes IPv4 and IPv6"],
        ),
        (
            "10.0.0.0/33",
            |e| matches!(e, SourceError::InvalidPrefix { max: 32, .. }),
            &["prefix length \"33\"", "0 to 32"],
        ),
        (
            "fd00::/129",
            |e| matches!(e, SourceError::InvalidPrefix { max: 128, .. }),
            &["0 to 128"],
        ),
        (
            "10.0.0.0/x",
            |e| matches!(e, SourceError::InvalidPrefix { .. }),
            &["\"x\""],
        ),
        (
            "10.0.0.5/28",
            |e| matches!(e, SourceError::HostBitsSet { .. }),
            &["host bits", "10.0.0.0/28"],
        ),
        (
            "10.0.0.0/8",
            |e| {
                matches!(
                    e,
                    SourceError::TooMany {
                        count: 16_777_214,
                        ..
                    }
                )
            },
            &["16777214", "65536", "10.0.0.0/16"],
        ),
        (
            "10.0.0.0-10.1.0.0",
            |e| matches!(e, SourceError::TooMany { count: 65_537, .. }),
            &["narrower", "10.0.0.0-10.0.255.255"],
        ),
        (
            "fd00::/64",
            |e| matches!(e, SourceError::TooMany { .. }),
            &["fd00::/112"],
        ),
        (
            "not-an-address",
            |e| matches!(e, SourceError::InvalidAddress { .. }),
            &["not an IP address", "valid forms"],
        ),
        (
            "hello world",
            |e| matches!(e, SourceError::InvalidAddress { .. }),
            &["not an IP address", "10.0.0.0/28"],
        ),
        (
            "127.0.0.1:8080",
            |e| matches!(e, SourceError::InvalidAddress { .. }),
            &["port"],
        ),
        (
            "127.0.0.2,bogus",
            |e| matches!(e, SourceError::InvalidAddress { item, .. } if item == "bogus"),
            &["\"bogus\""],
        ),
        (
            "256.0.0.1",
            |e| matches!(e, SourceError::InvalidAddress { .. }),
            &["not an IP address"],
        ),
        ("", |e| matches!(e, SourceError::Empty { .. }), &["empty"]),
        (
            " , ",
            |e| matches!(e, SourceError::Empty { .. }),
            &["empty"],
        ),
    ];
    for &(spec, check, fragments) in cases {
        let err = match parse_source(spec) {
            Ok(addrs) => panic!("{spec:?} should fail, got {} addresses", addrs.len()),
            Err(err) => err,
        };
        assert!(check(&err), "{spec:?}: unexpected variant {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("{spec:?}")),
            "message for {spec:?} does not quote the spec: {message}"
        );
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "message for {spec:?} lacks {fragment:?}: {message}"
            );
        }
    }
}

#[test]
fn pool_total_is_capped_too() {
    let specs = vec!["10.0.0.0/16".to_owned(), "10.1.0.0/24".to_owned()];
    let err = parse_sources(&specs).unwrap_err();
    assert!(matches!(err, SourceError::PoolTooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains("10.0.0.0/16, 10.1.0.0/24"),
        "{err}"
    );
}

#[test]
fn parse_sources_reports_the_failing_spec() {
    let specs = vec!["127.0.0.2".to_owned(), "127.0.0.9-127.0.0.3".to_owned()];
    let err = parse_sources(&specs).unwrap_err();
    assert!(err.to_string().contains("\"127.0.0.9-127.0.0.3\""), "{err}");
}

#[test]
fn iface_lo_has_loopback_and_no_link_local() {
    let addrs = parse_source("iface:lo").unwrap();
    assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
    assert_eq!(
        parse_source(" IFACE: lo ").unwrap(),
        addrs,
        "prefix case and spaces"
    );
    assert!(
        addrs
            .iter()
            .all(|a| !matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)),
        "{addrs:?}"
    );
}

#[test]
fn unknown_interface_is_named_with_the_alternatives() {
    let err = parse_source("iface:doesnotexist0").unwrap_err();
    let SourceError::UnknownInterface {
        name, available, ..
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(name, "doesnotexist0");
    assert!(available.iter().any(|n| n == "lo"), "{available:?}");
    let message = err.to_string();
    assert!(message.contains("doesnotexist0"), "{message}");
    assert!(message.contains("lo"), "{message}");
}

#[test]
fn loopback_addresses_are_bindable() {
    // Every address in 127.0.0.0/8 is local on Linux.
    check_bindable(ip("127.0.0.5")).unwrap();
    check_bindable(ip("127.0.0.1")).unwrap();
}

#[test]
fn foreign_address_is_not_bindable() {
    // TEST-NET-3 is never assigned to a host. With ip_nonlocal_bind=1 the kernel lets any
    // address be bound, so there is nothing to check.
    let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
        .map(|v| v.trim() == "1")
        .unwrap_or(false);
    if nonlocal {
        eprintln!("net.ipv4.ip_nonlocal_bind=1: any address binds; skipping");
        return;
    }
    let err = check_bindable(ip("203.0.113.7")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrNotAvailable, "{err}");
}
