//! The throwaway servers start, are reachable on loopback, and leave no process behind.

use std::net::TcpStream;

use keyroll_testkit::mariadb::{MariadbOptions, MariadbServer};
use keyroll_testkit::postgres::{PostgresOptions, PostgresServer};

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn postgres_starts_and_is_gone_after_drop() {
    let server = PostgresServer::start_with(PostgresOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    eprintln!("postgres ready in {:?}", server.ready_in());
    assert!(TcpStream::connect((server.host(), server.port())).is_ok());
    assert!(server.ca_cert_path().unwrap().is_file());
    let pid = format!("{server:?}");
    let pid: i32 = pid
        .split("pid: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let port = server.port();
    drop(server);
    assert!(!alive(pid), "postgres {pid} still running");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn mariadb_starts_and_is_gone_after_drop() {
    let server = MariadbServer::start_with(MariadbOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    eprintln!("mariadb ready in {:?}", server.ready_in());
    assert!(TcpStream::connect((server.host(), server.port())).is_ok());
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn two_servers_side_by_side_get_distinct_ports() {
    let a = PostgresServer::start().unwrap();
    let b = PostgresServer::start().unwrap();
    assert_ne!(a.port(), b.port());
}
