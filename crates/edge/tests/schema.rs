//! The schema derived from the protos: checked in as `crates/edge/schema.graphql`, so every
//! schema change shows in review, and valid for graphql-js.
//!
//! After changing a proto, update the checked-in SDL with:
//! `CROWDCRUNCH_UPDATE_SDL=1 cargo test -p crowdcrunch-edge --test schema`

mod support;

use std::path::Path;

use support::{js_dir, node_with_graphql, tempfile_dir};

fn checked_in() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql")
}

#[test]
fn the_checked_in_sdl_matches_the_protos() {
    let sdl = crowdcrunch_edge::sdl().expect("the protos make a schema");
    if std::env::var_os("CROWDCRUNCH_UPDATE_SDL").is_some() {
        std::fs::write(checked_in(), &sdl).expect("write schema.graphql");
    }
    // A missing file compares unequal, and the assertion says how to write it.
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        on_disk == sdl,
        "crates/edge/schema.graphql is out of date with proto/: run\n  \
         CROWDCRUNCH_UPDATE_SDL=1 cargo test -p crowdcrunch-edge --test schema\nand review the diff"
    );
}

/// The SDL of `tests/proto/mapping/v1/mapping.proto`, which holds every construct the edge maps.
fn mapping_sdl() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut compiler = protox::Compiler::new([root.join("tests/proto"), root.join("../../proto")])
        .expect("compiler");
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_file("mapping/v1/mapping.proto")
        .expect("compile mapping.proto");
    crowdcrunch_edge::sdl_of(&compiler.encode_file_descriptor_set()).expect("a schema")
}

/// The definition of `type_name` in `sdl`, without descriptions.
fn definition(sdl: &str, type_name: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    let mut in_description = false;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            let single = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            if !single {
                in_description = !in_description;
            }
            continue;
        }
        if in_description || trimmed.is_empty() {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        if !inside
            && ["type", "input", "enum", "union", "scalar"].contains(&keyword)
            && words.next() == Some(type_name)
        {
            inside = true;
        }
        if inside {
            out.push(trimmed.to_owned());
            if trimmed == "}" || (!trimmed.ends_with('{') && out.len() == 1) {
                break;
            }
        }
    }
    out.join("\n")
}

#[test]
fn every_protobuf_construct_maps_as_the_json_mapping_does() {
    let sdl = mapping_sdl();
    let thing = definition(&sdl, "Thing");
    for expected in [
        "id: ID!",
        "small: Int!",
        "big: Int64!",
        "unsignedBig: UInt64!",
        "unsignedSmall: UInt32!",
        "ratio: Float!",
        "blob: Bytes!",
        "maybe: Int",
        "when: DateTime",
        "howLong: Duration",
        "nickname: String",
        "wrappedBig: Int64",
        "attributes: JSON",
        "counts: [ThingCountsEntry!]!",
        "partsByName: [ThingPartsByNameEntry!]!",
        "parts: [Part!]!",
        "colour: Colour!",
        "payment: ThingPayment",
        "shape: ThingShape",
    ] {
        assert!(
            thing.contains(expected),
            "Thing lacks {expected:?}:\n{thing}"
        );
    }
    assert_eq!(definition(&sdl, "Colour"), "enum Colour {\nRED\nGREEN\n}");
    // Members that share a type or are scalars get wrappers; distinct messages stand as they are.
    assert_eq!(
        definition(&sdl, "ThingPayment"),
        "union ThingPayment = ThingCard | ThingVoucher | ThingBackupCard"
    );
    assert_eq!(
        definition(&sdl, "ThingShape"),
        "union ThingShape = Circle | Square"
    );
    let input = definition(&sdl, "ThingInput");
    assert!(
        !input.contains("id:"),
        "output-only fields stay out of input:\n{input}"
    );
    assert!(input.contains("payment: ThingPaymentInput"), "{input}");
    assert!(
        definition(&sdl, "ThingPaymentInput").starts_with("input ThingPaymentInput @oneOf {"),
        "{sdl}"
    );
    assert!(
        definition(&sdl, "Mutation").contains("forgetThing(input: ForgetThingInput!): Boolean")
            || definition(&sdl, "Mutation").contains("forgetThing(input: GetThingInput!): Boolean"),
        "Empty becomes Boolean:\n{}",
        definition(&sdl, "Mutation")
    );
    assert!(definition(&sdl, "ThingCountsEntry").contains("value: Int64!"));
}

#[test]
fn graphql_js_finds_the_schemas_valid() {
    let Some(node) = node_with_graphql() else {
        return;
    };
    let dir = tempfile_dir();
    let mapping = dir.join("mapping.graphql");
    std::fs::write(&mapping, mapping_sdl()).expect("write");
    let output = std::process::Command::new(node)
        .arg(js_dir().join("validate-schema.mjs"))
        .arg(checked_in())
        .arg(&mapping)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "graphql-js validateSchema:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
