//! Compiles every `.proto` under `proto/crowdcrunch` with protox (pure Rust, no system `protoc`) and
//! generates prost messages and tonic clients and servers for them.
//!
//! The descriptor set embedded for reflection and for the GraphQL edge is the one protox encodes
//! itself: its `prost_types` form drops custom options such as `google.api.field_behavior`.

use std::error::Error;
use std::path::{Path, PathBuf};

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

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .include_file("crowdcrunch.rs")
        // Card numbers and CVCs must never reach a log: `PaymentCard` gets a redacting `Debug`.
        .skip_debug(["crowdcrunch.type.v1.PaymentCard"])
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
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
