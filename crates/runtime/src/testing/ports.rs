//! Loopback addresses reserved for the rest of a test process, for servers that tests start as
//! separate processes (and restart on the same address after a kill).
//!
//! Asking the kernel for port 0 and handing the number to a child process races: between the probe
//! and the child's bind, any outgoing connection on the machine may be given that port as its
//! ephemeral source port, and another test may probe the same one. So a reserved port is taken
//! below the kernel's ephemeral range (where no outgoing connection is numbered), and it is locked
//! by a file in the temporary directory that every test process on the machine consults: the lock
//! is held until the process exits, so no other test takes the port, even while a killed server
//! is down before its restart.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

/// The lowest port handed out, clear of the well-known and commonly configured ones.
const LOWEST_PORT: u16 = 10_000;

/// The kernel's default start of the ephemeral range, where it cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

/// The lock files of the ports this process holds, kept open until it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// An address on 127.0.0.1 that nothing listens on and that no other test process, and no
/// outgoing connection, will take while this process lives.
///
/// # Panics
///
/// When every port in the range is taken or the lock directory cannot be written.
pub fn reserved_addr() -> SocketAddr {
    let directory = lock_directory();
    std::fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
    let ports = ports();
    let span = ports.end - ports.start;
    let offset = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u16;
    for step in 0..span {
        let port = ports.start + (offset + step) % span;
        if let Some(lock) = lock(lock_path(port))
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        {
            HELD.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(lock);
            return SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        }
    }
    panic!("no free port in {ports:?}");
}

/// The ports handed out: from [`LOWEST_PORT`] up to the kernel's ephemeral range (at least 1,000).
fn ports() -> Range<u16> {
    LOWEST_PORT..ephemeral_start().max(LOWEST_PORT + 1_000)
}

/// Where every test process keeps the lock files of the ports.
fn lock_directory() -> PathBuf {
    std::env::temp_dir().join("crowdcrunch-test-ports")
}

/// The lock file of `port`.
fn lock_path(port: u16) -> PathBuf {
    lock_directory().join(format!("{port}.lock"))
}

/// The port's lock file, locked by this process, or `None` when another process holds it.
fn lock(path: PathBuf) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    file.try_lock().ok().map(|()| file)
}

/// The first port of the kernel's ephemeral range (Linux), or the usual default.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_below_the_ephemeral_range_and_locked() {
        let first = reserved_addr();
        let second = reserved_addr();
        assert_ne!(first, second);
        for addr in [first, second] {
            assert!(ports().contains(&addr.port()));
            assert!(
                lock(lock_path(addr.port())).is_none(),
                "{addr} is not locked"
            );
            TcpListener::bind(addr).expect("a reserved address is free to bind");
        }
    }
}
