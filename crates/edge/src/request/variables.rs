//! A request's variables coerced against the types its operation declares, as the spec's
//! CoerceVariableValues does. This runs on every request, while the document itself is validated
//! once (the validation cache in `request::validation`): a repeated query with new variables costs this check
//! only. It is also stricter than async-graphql's dynamic schema, which leaves the built-in
//! scalars unchecked: an `Int` must be a 32-bit integer, a `String` a string.

use async_graphql::parser::types::OperationDefinition;
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{ServerError, Value, Variables};

/// One error per variable of `operation` that is missing while required, or whose value does
/// not fit its declared type.
pub fn coerce(
    registry: &Registry,
    operation: &OperationDefinition,
    variables: &Variables,
) -> Vec<ServerError> {
    let mut errors = Vec::new();
    for definition in &operation.variable_definitions {
        let variable = &definition.node;
        let name = &variable.name.node;
        let type_name = variable.var_type.node.to_string();
        let problem = match variables.get(name) {
            None if variable.default_value.is_none() && !variable.var_type.node.nullable => {
                Some(format!("of required type \"{type_name}\" was not provided"))
            }
            None => None,
            Some(value) => mismatch(registry, &type_name, value, &format!("${name}"))
                .map(|why| format!("got an invalid value: {why}")),
        };
        if let Some(problem) = problem {
            errors.push(ServerError::new(
                format!("Variable \"${name}\" {problem}"),
                Some(definition.pos),
            ));
        }
    }
    errors
}

/// Why `value` does not fit `type_name` (a GraphQL type reference such as `[ID!]!`), at `path`.
fn mismatch(registry: &Registry, type_name: &str, value: &Value, path: &str) -> Option<String> {
    let expected = || Some(format!("{path} is not a valid \"{type_name}\""));
    match MetaTypeName::create(type_name) {
        MetaTypeName::NonNull(inner) => match value {
            Value::Null => Some(format!("{path} must not be null")),
            _ => mismatch(registry, inner, value, path),
        },
        MetaTypeName::List(item) => match value {
            Value::Null => None,
            Value::List(items) => items.iter().enumerate().find_map(|(index, value)| {
                mismatch(registry, item, value, &format!("{path}[{index}]"))
            }),
            // A single value coerces to a list of one.
            _ => mismatch(registry, item, value, path),
        },
        MetaTypeName::Named(_) if matches!(value, Value::Null) => None,
        MetaTypeName::Named(name) => match (name, value) {
            ("Int", Value::Number(number)) => number
                .as_i64()
                .and_then(|int| i32::try_from(int).ok())
                .map_or_else(expected, |_| None),
            ("Float", Value::Number(_)) | ("String" | "ID", Value::String(_)) => None,
            ("Boolean", Value::Boolean(_)) => None,
            ("ID", Value::Number(number)) if number.is_i64() => None,
            ("Int" | "Float" | "String" | "ID" | "Boolean", _) => expected(),
            _ => match registry.types.get(name) {
                Some(MetaType::Scalar {
                    is_valid: Some(is_valid),
                    ..
                }) if !is_valid(value) => expected(),
                Some(MetaType::Scalar { .. }) => None,
                Some(MetaType::Enum { enum_values, .. }) => match value {
                    Value::Enum(item) if enum_values.contains_key(item.as_str()) => None,
                    Value::String(item) if enum_values.contains_key(item.as_str()) => None,
                    _ => expected(),
                },
                Some(MetaType::InputObject {
                    input_fields,
                    oneof,
                    ..
                }) => {
                    let Value::Object(fields) = value else {
                        return expected();
                    };
                    if *oneof
                        && (fields.len() != 1 || fields.values().any(|value| value == &Value::Null))
                    {
                        return Some(format!(
                            "{path} must have exactly one field, and it must not be null"
                        ));
                    }
                    if let Some(unknown) = fields
                        .keys()
                        .find(|key| !input_fields.contains_key(key.as_str()))
                    {
                        return Some(format!("{path} has no field \"{unknown}\" in \"{name}\""));
                    }
                    input_fields.values().find_map(|field| {
                        let path = format!("{path}.{}", field.name);
                        match fields.get(field.name.as_str()) {
                            Some(value) => mismatch(registry, &field.ty, value, &path),
                            None if MetaTypeName::create(&field.ty).is_non_null()
                                && field.default_value.is_none() =>
                            {
                                Some(format!("{path} of type \"{}\" is required", field.ty))
                            }
                            None => None,
                        }
                    })
                }
                Some(_) | None => expected(),
            },
        },
    }
}
