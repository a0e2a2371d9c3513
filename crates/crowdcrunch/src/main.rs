//! `crowdcrunch`: the one binary of the system. `serve <service>` runs one service (what a pod
//! runs); `dev` runs every service in one process on this machine, with embedded storage and demo
//! data.
//!
//! The binary only assembles: it parses configuration, starts telemetry, builds the services and
//! runs them until a signal. Bad configuration ends it with one line and a non-zero code before
//! any port is bound.

mod cli;
mod dev;
mod edge;
mod http_client;
mod load;
mod smoke;
mod token;

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc instead of the system allocator: the services and the edge allocate many small,
/// short-lived buffers per request (protobuf and GraphQL values), where glibc's malloc cost a
/// fifth of the edge's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    without_transparent_huge_pages();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return fail(&anyhow::Error::new(error).context("cannot start the async runtime"));
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas, and
/// where the kernel grants them (THP `madvise` or `always`, the usual defaults) each 2 MiB page
/// counts whole in the resident set as soon as one byte of it is touched: the edge held 44–52 MiB
/// under load, 16 MiB of it in huge pages, against 34–35 MiB without them and no more CPU per
/// request. Where the kernel refuses (an old kernel, a sandbox), nothing changes but the memory.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("crowdcrunch: transparent huge pages stay on: {error}");
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!(
        "crowdcrunch: {}",
        crowdcrunch_runtime::telemetry::cause_chain(error.as_ref())
    );
    ExitCode::FAILURE
}
