//! Time and connections over real TCP sockets: silent clients, clients that trickle their
//! headers or their body and idle keep-alive connections are closed within seconds of their
//! timeout while a normal client is served; past the connection limit clients wait; past the
//! concurrency limit requests are shed with 503 and `Retry-After`; and a request's deadline is
//! the `grpc-timeout` of its backend calls.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crowdcrunch_runtime::edge::EdgeSettings;
use serde_json::{Value, json};
use support::{codes, spawn_app, spawn_app_recording};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

/// How long after its timeout a slow client may still be connected.
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the edge closes the connection (end of stream or reset); answers what it sent,
/// or `None` if the connection is still open at `deadline`.
async fn read_until_closed(read: &mut OwnedReadHalf, deadline: Instant) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, read.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Writes `bytes` one at a time, `pause` apart, until they are all sent or the edge hangs up.
fn trickle(mut write: OwnedWriteHalf, bytes: Vec<u8>, pause: Duration) {
    tokio::spawn(async move {
        for byte in bytes {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    });
}

async fn connect(addr: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
    TcpStream::connect(addr)
        .await
        .expect("connect to the edge")
        .into_split()
}

#[tokio::test]
async fn slow_and_silent_clients_are_closed_while_others_are_served() {
    let timeout = Duration::from_secs(1);
    let settings = EdgeSettings {
        header_read_timeout: timeout,
        body_read_timeout: timeout,
        idle_timeout: timeout,
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let start = Instant::now();
    let pause = Duration::from_millis(250);

    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(connect(app.addr).await);
    }
    let mut trickling_headers = Vec::new();
    for _ in 0..5 {
        let (read, write) = connect(app.addr).await;
        let request = format!(
            "POST /graphql HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
            app.addr
        );
        trickle(write, request.into_bytes(), pause);
        trickling_headers.push(read);
    }
    let (mut trickling_body, mut write) = connect(app.addr).await;
    let body = br#"{"query": "{ customers(first: 1) { nodes { id } } }"}"#;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    write
        .write_all(head.as_bytes())
        .await
        .expect("send the headers");
    let head_sent = Instant::now();
    trickle(write, body.to_vec(), pause);
    let (mut kept_alive, mut kept_alive_write) = connect(app.addr).await;
    kept_alive_write
        .write_all(format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", app.addr).as_bytes())
        .await
        .expect("send a request");
    let mut answer = [0_u8; 512];
    let n = kept_alive.read(&mut answer).await.expect("an answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let kept_alive_idle = Instant::now();

    // Meanwhile a normal client is served.
    let response = app
        .graphql("{ customers(first: 1) { nodes { id } } }", Value::Null)
        .await;
    assert!(response["errors"].is_null(), "{response}");

    let deadline = start + timeout + SLACK;
    for (read, _write) in &mut silent {
        assert!(
            read_until_closed(read, deadline).await.is_some(),
            "a silent client is still connected after {:?}",
            start.elapsed()
        );
    }
    for read in &mut trickling_headers {
        assert!(
            read_until_closed(read, deadline).await.is_some(),
            "a client trickling its headers is still connected after {:?}",
            start.elapsed()
        );
    }
    let answered = read_until_closed(&mut trickling_body, head_sent + timeout + SLACK)
        .await
        .expect("a client trickling its body is still connected");
    assert!(
        answered.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    assert!(
        read_until_closed(&mut kept_alive, kept_alive_idle + timeout + SLACK)
            .await
            .is_some(),
        "an idle keep-alive connection is still open"
    );
    app.stop().await;
}

#[tokio::test]
async fn clients_past_the_connection_limit_wait_for_a_free_one() {
    let settings = EdgeSettings {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..EdgeSettings::default()
    };
    let app = spawn_app(settings, &[]).await;
    let first = connect(app.addr).await;
    let _second = connect(app.addr).await;
    let (mut read, mut write) = connect(app.addr).await;
    write
        .write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                app.addr
            )
            .as_bytes(),
        )
        .await
        .expect("send a request");
    let mut buffer = [0_u8; 512];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), read.read(&mut buffer))
            .await
            .is_err(),
        "a third connection is served while two are open and the limit is two"
    );
    drop(first);
    let answer = read_until_closed(&mut read, Instant::now() + Duration::from_secs(5))
        .await
        .expect("served once a connection closed");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    app.stop().await;
}

const QUERY: &str = "{ customers(first: 1) { nodes { id } } }";

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_with_retry_after() {
    // One request at a time; the backend holds each call for longer than a request may take.
    let settings = EdgeSettings {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(2),
        ..EdgeSettings::default()
    };
    let (app, recorded) = spawn_app_recording(settings, Duration::from_secs(30)).await;
    let app = Arc::new(app);
    let held = tokio::spawn({
        let app = app.clone();
        async move { app.post(&json!({"query": QUERY}), &[]).await }
    });
    while recorded.lock().expect("lock").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = app.post(&json!({"query": QUERY}), &[]).await;
    assert_eq!(shed.status, 503, "{shed:?}");
    let retry_after: u64 = shed.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after > 0);
    assert_eq!(codes(&shed.json()), ["OVERLOADED"], "{}", shed.json());
    // The probes are never shed.
    assert_eq!(app.get("/healthz", &[]).await.status, 200);

    held.await.expect("the held request");
    let answer = app.post(&json!({"query": "{ __typename }"}), &[]).await;
    assert_eq!(answer.status, 200, "the permit is given back");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

/// A `grpc-timeout` value (`<digits><unit>`) as a duration.
fn grpc_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().expect("digits");
    match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => panic!("not a grpc-timeout: {value}"),
    }
}

#[tokio::test]
async fn the_request_deadline_is_the_grpc_timeout_of_its_backend_calls() {
    let request_timeout = Duration::from_secs(1);
    let settings = EdgeSettings {
        request_timeout,
        backend_timeout: Duration::from_secs(10),
        ..EdgeSettings::default()
    };
    let (app, recorded) = spawn_app_recording(settings, Duration::from_secs(30)).await;
    let sent = Instant::now();
    let answer = app.post(&json!({"query": QUERY}), &[]).await;
    let took = sent.elapsed();
    assert!(
        took < request_timeout + SLACK,
        "answered after {took:?}, the deadline is {request_timeout:?}"
    );
    let body = answer.json();
    let timed_out = (answer.status == 504 && codes(&body) == ["TIMEOUT"])
        || codes(&body).iter().any(|code| code == "DEADLINE_EXCEEDED");
    assert!(timed_out, "{}: {body}", answer.status);

    let calls = recorded.lock().expect("lock").clone();
    let call = calls
        .iter()
        .find(|call| call["x-recorded-path"] != "/grpc.health.v1.Health/Check")
        .expect("the backend was called");
    let timeout = grpc_timeout(call["grpc-timeout"].to_str().expect("ascii"));
    assert!(
        timeout <= request_timeout && timeout > Duration::ZERO,
        "grpc-timeout {timeout:?}, the request's deadline {request_timeout:?}"
    );
    app.stop().await;
}
