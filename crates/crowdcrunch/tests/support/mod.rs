//! Running the real `crowdcrunch` binary in tests: spawn it, read its output line by line, wait
//! for a line with a deadline, signal it, and wait for its exit.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long a test waits for the binary to print what it expects.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `crowdcrunch` process; killed if still running when dropped.
pub struct Process {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far (stdout and stderr).
    pub seen: Vec<String>,
}

/// The binary built by this test build, logging JSON, never pointed at PostgreSQL by accident.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crowdcrunch"));
    command
        .env("CROWDCRUNCH_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("CROWDCRUNCH_DATABASE_URL");
    command
}

/// The settings that make a `serve` process verify the tokens of the test issuer
/// (`crowdcrunch_runtime::testing::token` mints them).
pub fn auth_settings() -> [(&'static str, String); 3] {
    let settings = crowdcrunch_runtime::testing::issuer().settings();
    [
        ("CROWDCRUNCH_AUTH_ISSUER", settings.rules.issuer),
        ("CROWDCRUNCH_AUTH_AUDIENCE", settings.rules.audience),
        (
            "CROWDCRUNCH_AUTH_JWKS_URL",
            settings.jwks.url.uri().to_string(),
        ),
    ]
}

/// The page-token key every `serve` process of the tests shares, as replicas of a service must
/// (base64 of 32 bytes).
pub fn page_token_key() -> [(&'static str, &'static str); 1] {
    [(
        "CROWDCRUNCH_PAGE_TOKEN_KEY",
        "Y3Jvd2RjcnVuY2gtdGVzdC1wYWdlLXRva2VuLWtleSE=",
    )]
}

/// A token signed with `dev`'s key in `data_dir` (`crowdcrunch token`), for `whom`
/// (`["--staff", "x"]`, `["--customer", id]`, `["--service", name]`).
pub fn token(data_dir: &std::path::Path, whom: &[&str]) -> String {
    let output = binary()
        .arg("token")
        .args(whom)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run crowdcrunch token");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// `crowdcrunch dev` over `data_dir` with every server on a free port (tests run side by side).
pub fn dev(data_dir: &std::path::Path) -> Command {
    let mut command = binary();
    command
        .args([
            "dev",
            "--metrics-port",
            "0",
            "--edge-port",
            "0",
            "--data-dir",
        ])
        .arg(data_dir);
    for service in &crowdcrunch::roster::SERVICES {
        command.args([format!("--{}-port", service.name), "0".to_owned()]);
    }
    command
}

impl Process {
    /// Starts `command` with its output captured.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the crowdcrunch binary");
        let (sender, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let streams: [Box<dyn std::io::Read + Send>; 2] = [Box::new(stdout), Box::new(stderr)];
        for stream in streams {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The lines printed since the last read, without waiting.
    pub fn take_lines(&mut self) -> Vec<String> {
        let fresh: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(fresh.iter().cloned());
        fresh
    }

    /// The address of `service` in the table `crowdcrunch dev` prints.
    pub fn wait_for_table_addr(&mut self, service: &str) -> SocketAddr {
        let line = self.wait_for_line(&format!("  {service} "));
        let addr = line.split_whitespace().nth(1).expect("an address column");
        addr.parse()
            .unwrap_or_else(|_| panic!("not an address in {line:?}"))
    }

    /// The address a service logged in its JSON "serving gRPC" line.
    pub fn wait_for_grpc_addr(&mut self, service: &str) -> SocketAddr {
        loop {
            let line = self.wait_for_line("serving gRPC");
            let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            if json["service"]
                .as_str()
                .is_some_and(|name| name.contains(service))
            {
                let addr = json["local_addr"].as_str().expect("local_addr");
                return addr.parse().expect("an address");
            }
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, reading the rest of its output.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("wait for the process") {
                // The reader threads end with the pipes; collect what they still hold.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.seen.push(line);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit; output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
