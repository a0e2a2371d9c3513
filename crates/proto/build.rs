//! Compiles every `.proto` under `proto/crowdcrunch` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic clients and servers for them.
//!
//! Servers decode requests with `crate::codec::RequestCodec` (a body that is not protobuf is
//! INVALID_ARGUMENT); clients keep tonic's `ProstCodec`. tonic-prost-build takes one codec for
//! both, so its client and server generators run side by side, each with its own.
//!
//! The descriptor set embedded for reflection and for the GraphQL edge is the one protox encodes
//! itself: its `prost_types` form drops custom options such as `google.api.field_behavior`.

use std::error::Error;
use std::path::{Path, PathBuf};

use prost_build::{Service, ServiceGenerator};

fn main() -> Result<(), Box<dyn Error>> {
    // Read at run time, not baked in with `env!`: one compiled build script may serve several
    // checkouts that share a target directory.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let proto_root = proto_root.canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root.join("crowdcrunch"), &mut files)?;
    files.sort();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|file| file.strip_prefix(&proto_root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&relative)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("crowdcrunch_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let clients = tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .service_generator();
    let servers = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("crate::codec::RequestCodec")
        .service_generator();
    let mut config = tonic_prost_build::Config::new();
    config.service_generator(Box::new(ClientsAndServers { clients, servers }));
    // Neither client nor server here: the generators above are already in `config`.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .include_file("crowdcrunch.rs")
        // Card numbers and CVCs must never reach a log: `PaymentCard` gets a redacting `Debug`.
        .skip_debug(["crowdcrunch.type.v1.PaymentCard"])
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}

/// Generates each service's client with one generator and its server with another.
struct ClientsAndServers {
    clients: Box<dyn ServiceGenerator>,
    servers: Box<dyn ServiceGenerator>,
}

impl ServiceGenerator for ClientsAndServers {
    fn generate(&mut self, service: Service, buf: &mut String) {
        self.clients.generate(service.clone(), buf);
        self.servers.generate(service, buf);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.clients.finalize(buf);
        self.servers.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.clients.finalize_package(package, buf);
        self.servers.finalize_package(package, buf);
    }
}

/// Every `.proto` file below `dir`, recursively.
fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
