//! The README's grpcurl session, run as written against `crowdcrunch dev` (on free ports: each
//! `localhost:<default port>` is pointed at the port the service really got).

#[expect(
    dead_code,
    reason = "this test uses a part of the shared support module"
)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Process;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// grpcurl on PATH or where `.ci/run` installs it.
fn grpcurl_dir() -> Option<PathBuf> {
    let installed = repository().join(".tools/bin");
    if installed.join("grpcurl").exists() {
        return Some(installed);
    }
    let found = Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success());
    found.then(PathBuf::new)
}

/// The shell block that follows the `<!-- grpcurl-session -->` marker.
fn session() -> String {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("read README.md");
    let after_marker = readme
        .split("<!-- grpcurl-session -->")
        .nth(1)
        .expect("the grpcurl session marker");
    let block = after_marker
        .split("```sh\n")
        .nth(1)
        .expect("a sh block after the marker");
    block
        .split("```")
        .next()
        .expect("a closed block")
        .to_owned()
}

#[test]
fn the_readme_grpcurl_session_works_against_dev() {
    let Some(grpcurl_dir) = grpcurl_dir() else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipping the README grpcurl session: grpcurl not found (.ci/run installs it)"
        );
        return;
    };
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut dev = Process::start(support::dev(data_dir.path()));
    let mut script = session();
    // In the order of the table `dev` prints.
    for service in crowdcrunch::roster::by_port() {
        let addr = dev.wait_for_table_addr(service.name);
        let default = format!("localhost:{}", service.default_port);
        script = script.replace(&default, &addr.to_string());
    }
    dev.wait_for_line("demo data seeded");
    let data_dir_flag = format!("--data-dir {}", data_dir.path().display());
    script = script.replace("--data-dir ./data", &data_dir_flag);

    // grpcurl, and this build's `crowdcrunch` (the README's `target/release`).
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_crowdcrunch"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}:{}",
        grpcurl_dir.display(),
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the session failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("crowdcrunch.customers.v1.CustomerService"),
        "{stdout}"
    );
    assert!(stdout.contains("\"status\": \"SERVING\""), "{stdout}");
    assert!(stdout.contains("RESERVATION_STATUS_RESERVED"), "{stdout}");
    assert!(
        stdout.contains("PAYMENT_STATUS_CAPTURED"),
        "the order was paid: {stdout}"
    );
    assert!(
        stdout.contains("ORDER_STATUS_SHIPPED"),
        "WatchOrder saw it ship: {stdout}"
    );
    for event_type in [
        "OrderPlaced",
        "PaymentCaptured",
        "ShipmentShipped",
        "OrderShipped",
    ] {
        assert!(
            stdout.contains(&format!("\"type\": \"{event_type}\"")),
            "no {event_type} in the story: {stdout}"
        );
    }
    assert_eq!(
        stdout.matches("\"email\": \"linus@example.com\"").count(),
        2,
        "created, then got:\n{stdout}"
    );
}
