//! Live heap of one idle `wss://` client connection's TLS state, measured with a counting
//! allocator: a rustls `ClientConnection` driven exactly as the engine drives it
//! (`wsscale::engine::tls::{encrypt, decrypt, take_output}`) against an in-memory rustls
//! server, then held idle. Part of `bench/tls.sh`; prints one line per stage.
//!
//! `cargo run --release --example tls_conn_heap`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use rustls::ServerConnection;
use rustls::pki_types::PrivateKeyDer;
use wsscale::engine::tls::{ClientTls, decrypt, encrypt, take_output};
use wsscale::plan::tls::provider;
use wsscale::plan::{Target, TlsSpec};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Relaxed)
}

fn server_to_client(
    server: &mut ServerConnection,
    client: &mut rustls::ClientConnection,
    plain: &mut Vec<u8>,
) {
    let mut wire = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut wire).unwrap();
    }
    if !wire.is_empty() {
        decrypt(client, &wire, plain).unwrap();
    }
}

fn client_to_server(client: &mut rustls::ClientConnection, server: &mut ServerConnection) {
    let mut wire = Vec::new();
    take_output(client, &mut wire);
    let mut rd = &wire[..];
    while !rd.is_empty() {
        server.read_tls(&mut rd).unwrap();
        server.process_new_packets().unwrap();
    }
}

fn main() {
    let resume = std::env::args().any(|a| a == "--resume");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    server_config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let server_config = Arc::new(server_config);
    let mut pem = tempfile_path();
    pem.1.write_all(cert.pem().as_bytes()).unwrap();
    let _cleanup = Cleanup(pem.0.clone());
    let spec = TlsSpec {
        ca_files: vec![pem.0.clone()],
        resume,
        ..Default::default()
    };
    let target = Target {
        url: "wss://localhost/".into(),
        host_header: "localhost".into(),
        path_and_query: "/".into(),
        addr: "127.0.0.1:443".parse().unwrap(),
        tls: true,
    };
    let tls = ClientTls::new(&spec, &[target]).unwrap().unwrap();
    println!(
        "provider ring, resumption {}",
        if resume { "on" } else { "off" }
    );
    println!(
        "size_of::<rustls::ClientConnection>() = {} bytes (boxed once per connection)",
        std::mem::size_of::<rustls::ClientConnection>()
    );

    const N: usize = 1000;
    let mut held = Vec::with_capacity(N);
    let mut servers = Vec::with_capacity(N);
    let mut plain = Vec::with_capacity(64 * 1024);
    // Warm up (first connection pays one-time lazies; with --resume it fills the store).
    for _ in 0..3 {
        let mut c = tls.connect(0).unwrap();
        let mut s = ServerConnection::new(server_config.clone()).unwrap();
        for _ in 0..4 {
            client_to_server(&mut c, &mut s);
            server_to_client(&mut s, &mut c, &mut plain);
        }
    }
    let base = live();
    let mut after_new = 0;
    let mut after_hs = 0;
    for i in 0..N {
        let before = live();
        let mut c = tls.connect(0).unwrap();
        if i == 0 {
            after_new = live() - before;
        }
        // The server side lives in another process in real runs: it is subtracted below.
        let mut s = ServerConnection::new(server_config.clone()).unwrap();
        for _ in 0..4 {
            client_to_server(&mut c, &mut s);
            server_to_client(&mut s, &mut c, &mut plain);
        }
        // An upgrade request / response and an echo, as a held connection would see.
        let mut wire = Vec::new();
        encrypt(
            &mut c,
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            &mut wire,
        )
        .unwrap();
        drop(wire);
        s.writer().write_all(&[0u8; 129]).unwrap();
        server_to_client(&mut s, &mut c, &mut plain);
        plain.clear();
        if i == 0 {
            after_hs = live() - before;
        }
        servers.push(s);
        held.push(c);
    }
    // Exclude the servers: measure them alone and subtract.
    let with_servers = live() - base;
    let s_before = live();
    drop(servers);
    let servers_cost = s_before - live();
    let per_client = (with_servers - servers_cost) as f64 / N as f64;
    println!("heap right after ClientConnection::new (first)   {after_new:>7} bytes");
    println!(
        "heap after handshake + one record each way (first) {after_hs:>5} bytes (includes its server side)"
    );
    println!(
        "live heap per held idle client connection ({N} held) {:>7.0} bytes = {:.2} KiB",
        per_client,
        per_client / 1024.0
    );
    let conn_struct = std::mem::size_of::<rustls::ClientConnection>() as f64;
    // rustls' DeframerVecBuffer keeps a 4096-byte read window once read_tls was called
    // (READ_SIZE in rustls/src/msgs/deframer/buffers.rs, 0.23).
    let window = 4096.0;
    println!(
        "  of which: ClientConnection struct {conn_struct:.0} B, rustls receive window {window:.0} B, \
         keys + traffic state + other {:.0} B",
        per_client - conn_struct - window
    );
    drop(held);
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_path() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("wsscale-tls-heap-{}.pem", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    (path, f)
}
