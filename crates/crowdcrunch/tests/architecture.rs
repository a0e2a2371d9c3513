//! The architecture invariants of ARCHITECTURE.md that a machine can check, over `cargo metadata`
//! and the sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The service crates, one per row of the roster: each owns one service and never depends on
/// another.
fn service_crates() -> Vec<String> {
    crowdcrunch::roster::SERVICES
        .iter()
        .map(|service| format!("crowdcrunch-{}", service.name))
        .collect()
}

struct Package {
    dependencies: Vec<String>,
    bin_targets: Vec<String>,
    source_dir: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every workspace package with its normal (non-dev) dependencies and binary targets.
fn workspace() -> BTreeMap<String, Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_owned();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .map(|dependency| {
                    dependency["name"]
                        .as_str()
                        .expect("dependency name")
                        .to_owned()
                })
                .collect();
            let bin_targets = package["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .filter(|target| {
                    target["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
                })
                .map(|target| target["name"].as_str().expect("target name").to_owned())
                .collect();
            let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest path"));
            let source_dir = manifest.parent().expect("crate dir").join("src");
            (
                name,
                Package {
                    dependencies,
                    bin_targets,
                    source_dir,
                },
            )
        })
        .collect()
}

#[test]
fn service_crates_never_depend_on_each_other() {
    let service_crates = service_crates();
    let workspace = workspace();
    for name in &service_crates {
        assert!(
            workspace.contains_key(name),
            "the roster's {name} is not a workspace crate"
        );
    }
    for (name, package) in workspace {
        if !service_crates.contains(&name) {
            continue;
        }
        let services: Vec<_> = package
            .dependencies
            .iter()
            .filter(|dependency| service_crates.contains(dependency))
            .collect();
        assert!(
            services.is_empty(),
            "{name} depends on the service crates {services:?}"
        );
    }
}

#[test]
fn only_the_edge_knows_graphql_and_the_runtime_knows_no_service() {
    for (name, package) in workspace() {
        let graphql: Vec<_> = package
            .dependencies
            .iter()
            .filter(|dependency| dependency.contains("graphql"))
            .collect();
        if name != "crowdcrunch-edge" {
            assert!(
                graphql.is_empty(),
                "{name} depends on {graphql:?}: only the edge knows GraphQL"
            );
        }
        if name == "crowdcrunch-runtime" {
            let ours: Vec<_> = package
                .dependencies
                .iter()
                .filter(|dependency| dependency.starts_with("crowdcrunch"))
                .collect();
            assert!(
                ours.is_empty(),
                "the runtime depends on {ours:?}: it must stay infrastructure only"
            );
        }
    }
}

#[test]
fn the_workspace_has_one_binary() {
    let binaries: Vec<_> = workspace()
        .into_iter()
        .flat_map(|(name, package)| {
            package
                .bin_targets
                .into_iter()
                .map(move |bin| format!("{name}:{bin}"))
        })
        .collect();
    assert_eq!(
        binaries,
        ["crowdcrunch:crowdcrunch"],
        "`cargo run -- dev` needs exactly one bin target"
    );
}

/// `.rs` files below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn only_the_runtime_reads_the_environment() {
    let forbidden = [
        "std::env::var",
        "env::var(",
        "env::var_os",
        "env::vars",
        "env = \"",
    ];
    for (name, package) in workspace() {
        if name == "crowdcrunch-runtime" {
            continue;
        }
        for file in sources(&package.source_dir) {
            let text = std::fs::read_to_string(&file).expect("read source");
            for pattern in forbidden {
                assert!(
                    !text.contains(pattern),
                    "{} uses {pattern:?}: only crates/runtime reads the environment",
                    file.display()
                );
            }
        }
    }
}

/// Whether `text` holds `word` as a whole word (not inside a longer identifier), in any case.
fn holds_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|token| token.eq_ignore_ascii_case(word))
}

#[test]
fn the_runtime_names_no_service() {
    let runtime = workspace()
        .remove("crowdcrunch-runtime")
        .expect("the runtime package");
    let files = sources(&runtime.source_dir);
    assert!(
        !files.is_empty(),
        "no sources under {}",
        runtime.source_dir.display()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for service in &crowdcrunch::roster::SERVICES {
            assert!(
                !holds_word(&text, service.name),
                "{} names the {} service: the runtime takes service names as data from the binary",
                file.display(),
                service.name
            );
        }
    }
}
