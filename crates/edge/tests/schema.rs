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

/// The encoded descriptor set of `mapping/v1/mapping.proto` under `dir` (with the repository's
/// protos for its imports).
fn mapping_descriptors(dir: &Path) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut compiler =
        protox::Compiler::new([dir.to_owned(), root.join("../../proto")]).expect("compiler");
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_file("mapping/v1/mapping.proto")
        .expect("compile mapping.proto");
    compiler.encode_file_descriptor_set()
}

/// The SDL of `tests/proto/mapping/v1/mapping.proto`, which holds every construct the edge maps.
fn mapping_sdl() -> String {
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto");
    crowdcrunch_edge::sdl_of(&mapping_descriptors(&protos)).expect("a schema")
}

#[test]
fn each_root_field_says_who_may_use_it_as_the_last_line_of_its_description() {
    let sdl = mapping_sdl();
    for (field, access) in [
        ("thing(", "Access: anyone."),
        ("createThing(", "Access: staff."),
        ("forgetThing(", "Access: staff."),
    ] {
        let at = sdl
            .find(&format!("\t{field}"))
            .expect("the field is in the SDL");
        let description = sdl[..at].trim_end().trim_end_matches("\"\"\"").trim_end();
        assert!(
            description.ends_with(access),
            "{field} should end its description with {access:?}:\n{}",
            &sdl[at.saturating_sub(200)..at]
        );
    }
}

#[test]
fn an_rpc_without_an_access_rule_stops_the_edge_from_starting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto = std::fs::read_to_string(root.join("tests/proto/mapping/v1/mapping.proto"))
        .expect("read mapping.proto");
    let rule = r#"option (crowdcrunch.access.v1.rule) = {roles: [ROLE_STAFF] peers: ["janitor"]};"#;
    assert!(
        proto.contains(rule),
        "ForgetThing's rule is in mapping.proto"
    );
    let dir = tempfile_dir().join("undeclared");
    std::fs::create_dir_all(dir.join("mapping/v1")).expect("create the proto dir");
    std::fs::write(
        dir.join("mapping/v1/mapping.proto"),
        proto.replace(rule, ""),
    )
    .expect("write the proto");
    let error = crowdcrunch_edge::sdl_of(&mapping_descriptors(&dir))
        .expect_err("deny by default: no schema without every rule");
    let message = error.to_string();
    assert!(
        message.contains("mapping.v1.MappingService.ForgetThing") && !message.contains('\n'),
        "one line naming the RPC: {message}"
    );
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
