//! Ports for servers a test (or its child process) binds by number.

/// A free loopback TCP port for a server the caller (or a child process) binds next, taken
/// from 20000–29999: below Linux's ephemeral range (32768–60999), so no `bind(0)` of a
/// parallel test and no outgoing connection can take it in between, and apart from the
/// simulator's fixed ports. Ports are handed out once per process, each checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // A different start per process: binaries run one after another, and a child of the last
    // one may still be exiting.
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..10_000 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (seed.wrapping_add(n) % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in 20000-29999");
}
