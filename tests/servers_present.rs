//! With `WSSCALE_SERVERS=1` (as `.ci/run` sets it), every protocol server that
//! `ci/servers.sh` starts must be reachable: a server that failed to come up fails CI here,
//! even while no protocol test uses it yet. Without `WSSCALE_SERVERS` it is skipped.

#[path = "util/servers.rs"]
mod servers;

#[test]
fn every_protocol_server_accepts_connections() {
    if !servers::enabled() {
        eprintln!(
            "skipped: WSSCALE_SERVERS not set (start the servers with: {})",
            servers::HOW_TO_START
        );
        return;
    }
    // All four at once: when they are down, the test takes one connect bound, not four.
    let results: Vec<_> = std::thread::scope(|scope| {
        let checks: Vec<_> = servers::NAMES
            .map(|name| scope.spawn(move || (name, servers::check(name))))
            .into_iter()
            .collect();
        checks.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (name, result) in results {
        match result {
            Ok(Some(url)) => eprintln!("{name}: {url} accepts connections"),
            Ok(None) => unreachable!("WSSCALE_SERVERS is set"),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} test servers unreachable:\n{}",
        failures.len(),
        servers::NAMES.len(),
        failures.join("\n")
    );
}
