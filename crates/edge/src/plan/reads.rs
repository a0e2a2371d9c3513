//! What a selection reads of a message, so that a backend's answer is decoded only as far as the
//! query looks at it: the fields of an object type each read some protobuf fields of their
//! message ([`FieldRead`], recorded when the schema is built), and a request's selection of that
//! type becomes a [`FieldMask`] that the decoder follows, skipping every other field on the wire.
//!
//! Whatever the edge itself reads of a message is part of what its GraphQL fields read: a join
//! field reads its key, `Money.amount` both of Money's fields, a union every member of its
//! oneof. A selection this module cannot account for (a field it has no record of) gets no mask:
//! the whole answer is decoded, as without this module.

use std::collections::HashMap;

use async_graphql::SelectionField;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost::{DecodeError, Message as _};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, MessageDescriptor, ReflectMessage as _, Value,
};

/// What one GraphQL field of an object type reads of its parent message.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldRead {
    /// These fields, whole.
    Whole(Vec<u32>),
    /// A message field shown as an object: as far as the field's own selection reads it.
    Nested(FieldDescriptor),
}

/// The reads of every object type's fields, by message full name and GraphQL field name.
#[derive(Debug, Default)]
pub struct Reads(HashMap<String, HashMap<String, FieldRead>>);

impl Reads {
    /// Records that the GraphQL field `name` of `message`'s object type reads `read`.
    pub fn record(&mut self, message: &MessageDescriptor, name: &str, read: FieldRead) {
        self.0
            .entry(message.full_name().to_owned())
            .or_default()
            .insert(name.to_owned(), read);
    }

    /// What the GraphQL field `name` of `message`'s object type reads, as recorded.
    #[cfg(test)]
    fn read(&self, message: &str, name: &str) -> Option<&FieldRead> {
        self.0.get(message)?.get(name)
    }

    /// The mask of what `selection` reads of a `message`; `None` (decode everything) when a
    /// selected field has no record.
    pub fn mask<'s>(
        &self,
        message: &MessageDescriptor,
        selection: impl IntoIterator<Item = SelectionField<'s>>,
    ) -> Option<FieldMask> {
        let fields = self.0.get(message.full_name())?;
        let mut mask = FieldMask::default();
        for selected in selection {
            let name = selected.name();
            if name.starts_with("__") {
                continue;
            }
            match fields.get(name)? {
                FieldRead::Whole(numbers) => {
                    for number in numbers {
                        mask.add(*number, None);
                    }
                }
                FieldRead::Nested(field) => {
                    let child = field.kind().as_message()?.clone();
                    let below = self.mask(&child, selected.selection_set())?;
                    mask.add(field.number(), Some(below));
                }
            }
        }
        Some(mask)
    }
}

/// The fields of a message to decode, by number: `None` whole, `Some` as far as the nested mask
/// says. Every other field is skipped.
///
/// Sorted by number and searched by halves: a decode looks up every field on the wire (a page of
/// twenty orders, hundreds a request), and a message has a few dozen fields at most, where a
/// binary search beats hashing each number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMask {
    fields: Vec<(u32, Option<FieldMask>)>,
}

impl FieldMask {
    /// Every field of `message` whole, but `list` (a repeated message field) as far as `items`
    /// says: a List response with its page of items masked.
    pub fn all_but(message: &MessageDescriptor, list: &FieldDescriptor, items: Self) -> Self {
        let mut mask = Self::default();
        for field in message.fields().filter(|field| field != list) {
            mask.add(field.number(), None);
        }
        mask.add(list.number(), Some(items));
        mask
    }

    /// How far field `number` is read, when it is.
    fn get(&self, number: u32) -> Option<&Option<Self>> {
        self.position(number)
            .ok()
            .map(|index| &self.fields[index].1)
    }

    /// Where field `number` is (`Ok`), or where it would go to keep the fields sorted (`Err`).
    fn position(&self, number: u32) -> Result<usize, usize> {
        self.fields
            .binary_search_by_key(&number, |(number, _)| *number)
    }

    /// Adds field `number`, whole (`None`) or as far as `below` says; a field asked for twice
    /// (aliases, or a join key that is also selected) is read as far as either asks.
    fn add(&mut self, number: u32, below: Option<Self>) {
        match self.position(number) {
            Err(index) => self.fields.insert(index, (number, below)),
            Ok(index) => match (&mut self.fields[index].1, below) {
                (Some(existing), Some(below)) => {
                    for (number, below) in below.fields {
                        existing.add(number, below);
                    }
                }
                (existing @ Some(_), None) => *existing = None,
                (None, _) => {}
            },
        }
    }

    /// Decodes a `message` from `bytes`, only the fields this mask names.
    pub fn decode(
        &self,
        message: MessageDescriptor,
        bytes: &[u8],
    ) -> Result<DynamicMessage, MaskedDecodeError> {
        let mut decoded = DynamicMessage::new(message);
        self.merge_into(&mut decoded, bytes)?;
        Ok(decoded)
    }

    /// Merges the masked fields of `bytes` into `message`: the fields read whole are gathered as
    /// they are on the wire and decoded together by prost-reflect; masked message fields are
    /// decoded field by field, below.
    fn merge_into(
        &self,
        message: &mut DynamicMessage,
        mut bytes: &[u8],
    ) -> Result<(), MaskedDecodeError> {
        // At most the whole message is kept: one allocation, never grown.
        let mut whole = Vec::with_capacity(bytes.len());
        while !bytes.is_empty() {
            let start = bytes;
            let (number, wire_type) = decode_key(&mut bytes)?;
            match self.get(number) {
                None => skip_field(wire_type, number, &mut bytes, DecodeContext::default())?,
                Some(Some(below)) if wire_type == WireType::LengthDelimited => {
                    let length = usize::try_from(decode_varint(&mut bytes)?)
                        .ok()
                        .filter(|length| *length <= bytes.len())
                        .ok_or(MaskedDecodeError::Truncated)?;
                    let (inner, rest) = bytes.split_at(length);
                    bytes = rest;
                    below.merge_into(nested(message, number)?, inner)?;
                }
                // Read whole; or a masked field that is not length-delimited, which the full
                // decoder judges.
                Some(_) => {
                    skip_field(wire_type, number, &mut bytes, DecodeContext::default())?;
                    whole.extend_from_slice(&start[..start.len() - bytes.len()]);
                }
            }
        }
        message.merge(whole.as_slice())?;
        Ok(())
    }
}

/// A backend's answer that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum MaskedDecodeError {
    /// Not protobuf, or not of its message type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A length-delimited field longer than what is left.
    #[error("a field is longer than its message")]
    Truncated,
    /// A mask naming a field its message does not have as a message field: the edge's fault.
    #[error("the mask names field {number} of {message}, which holds no messages")]
    Unmasked {
        /// The message.
        message: String,
        /// The field number.
        number: u32,
    },
}

/// The message of field `number` of `message` to merge into: the one set (of a repeated field, a
/// new one at its end).
fn nested(
    message: &mut DynamicMessage,
    number: u32,
) -> Result<&mut DynamicMessage, MaskedDecodeError> {
    let descriptor = message.descriptor();
    let unmasked = || MaskedDecodeError::Unmasked {
        message: descriptor.full_name().to_owned(),
        number,
    };
    let field = descriptor.get_field(number).ok_or_else(unmasked)?;
    let kind = field.kind().as_message().cloned().ok_or_else(unmasked)?;
    let slot = match message.get_field_mut(&field) {
        Value::List(items) => {
            items.push(Value::Message(DynamicMessage::new(kind)));
            items.last_mut()
        }
        value => Some(value),
    };
    match slot {
        Some(Value::Message(child)) => Ok(child),
        _ => Err(unmasked()),
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;

    use super::*;

    fn descriptor(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
        pool.get_message_by_name(name).expect(name)
    }

    fn field(message: &MessageDescriptor, name: &str) -> FieldDescriptor {
        message.get_field_by_name(name).expect(name)
    }

    fn money(pool: &DescriptorPool, minor_units: i64) -> Value {
        let mut money = DynamicMessage::new(descriptor(pool, "crowdcrunch.type.v1.Money"));
        money.set_field_by_name("currency_code", Value::String("USD".into()));
        money.set_field_by_name("minor_units", Value::I64(minor_units));
        Value::Message(money)
    }

    fn line(pool: &DescriptorPool, sku: &str, quantity: i32) -> Value {
        let mut line = DynamicMessage::new(descriptor(pool, "crowdcrunch.orders.v1.OrderLine"));
        line.set_field_by_name("sku", Value::String(sku.into()));
        line.set_field_by_name("quantity", Value::I32(quantity));
        line.set_field_by_name("unit_price", money(pool, 250));
        Value::Message(line)
    }

    /// The schema records what the edge reads on its own account with the field that causes it:
    /// a join its key, `Money.amount` both fields, an object field as far as its own selection
    /// goes. (The contract has no oneof; a union reads every member whole, which needs no mask.)
    #[test]
    fn each_field_records_what_it_reads_of_its_message() {
        let catalog = crate::plan::catalog::Catalog::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET)
            .expect("catalog");
        let (_, plan) = crate::schema::build(
            &catalog,
            &crate::schema::SchemaOptions::default(),
            |builder| builder,
        )
        .expect("schema");
        // The catalog's own pool: descriptors of another pool never compare equal.
        let pool = catalog.pool();
        let order = descriptor(pool, "crowdcrunch.orders.v1.Order");
        let money = descriptor(pool, "crowdcrunch.type.v1.Money");
        let reads = &plan.reads;
        let number = |message: &MessageDescriptor, name: &str| field(message, name).number();

        assert_eq!(
            reads.read(order.full_name(), "id"),
            Some(&FieldRead::Whole(vec![number(&order, "id")]))
        );
        assert_eq!(
            reads.read(order.full_name(), "customer"),
            Some(&FieldRead::Whole(vec![number(&order, "customer_id")])),
            "a join reads its key"
        );
        assert_eq!(
            reads.read(order.full_name(), "lines"),
            Some(&FieldRead::Nested(field(&order, "lines")))
        );
        assert_eq!(
            reads.read(money.full_name(), "amount"),
            Some(&FieldRead::Whole(vec![
                number(&money, "currency_code"),
                number(&money, "minor_units")
            ]))
        );
    }

    /// Masked, an answer keeps exactly the fields named, nested ones as deep as named, repeated
    /// ones item by item, and equals the whole decode cut down to them.
    #[test]
    fn a_masked_decode_keeps_what_the_mask_names_and_skips_the_rest() {
        let pool = DescriptorPool::decode(crowdcrunch_proto::FILE_DESCRIPTOR_SET).expect("pool");
        let order = descriptor(&pool, "crowdcrunch.orders.v1.Order");
        let line_type = descriptor(&pool, "crowdcrunch.orders.v1.OrderLine");
        let mut full = DynamicMessage::new(order.clone());
        full.set_field_by_name("id", Value::String("o-1".into()));
        full.set_field_by_name("customer_id", Value::String("c-1".into()));
        full.set_field_by_name("failure_reason", Value::String("none".into()));
        full.set_field_by_name("status", Value::EnumNumber(2));
        full.set_field_by_name(
            "lines",
            Value::List(vec![line(&pool, "MUG", 2), line(&pool, "PEN", 1)]),
        );
        let bytes = full.encode_to_vec();

        let mut lines = FieldMask::default();
        lines.add(field(&line_type, "sku").number(), None);
        let mut mask = FieldMask::default();
        mask.add(field(&order, "status").number(), None);
        mask.add(field(&order, "lines").number(), Some(lines));
        mask.add(field(&order, "id").number(), None);
        let masked = mask.decode(order.clone(), &bytes).expect("decode");

        let mut expected = DynamicMessage::new(order.clone());
        expected.set_field_by_name("id", Value::String("o-1".into()));
        expected.set_field_by_name("status", Value::EnumNumber(2));
        let sku_only = |sku: &str| {
            let mut line = DynamicMessage::new(line_type.clone());
            line.set_field_by_name("sku", Value::String(sku.into()));
            Value::Message(line)
        };
        expected.set_field_by_name("lines", Value::List(vec![sku_only("MUG"), sku_only("PEN")]));
        assert_eq!(masked, expected);

        let mut everything = FieldMask::default();
        for field in order.fields() {
            everything.add(field.number(), None);
        }
        assert_eq!(
            everything.decode(order.clone(), &bytes).expect("decode"),
            full
        );
        assert!(matches!(
            mask.decode(order, &bytes[..bytes.len() - 1]),
            Err(MaskedDecodeError::Decode(_) | MaskedDecodeError::Truncated)
        ));
    }

    /// A field asked for twice is read as far as either asks: whole wins over a nested mask, and
    /// two nested masks add up; the fields stay in order of number, whatever order they came in.
    #[test]
    fn a_field_asked_for_twice_is_read_as_far_as_either_asks() {
        let nested = |numbers: &[u32]| {
            let mut mask = FieldMask::default();
            for number in numbers {
                mask.add(*number, None);
            }
            mask
        };
        let mut mask = FieldMask::default();
        mask.add(7, Some(nested(&[2])));
        mask.add(3, Some(nested(&[1])));
        mask.add(7, Some(nested(&[1, 2])));
        mask.add(3, None);
        mask.add(3, Some(nested(&[4])));
        mask.add(1, None);
        assert_eq!(
            mask.fields,
            vec![(1, None), (3, None), (7, Some(nested(&[1, 2])))]
        );
        assert_eq!(mask.get(7), Some(&Some(nested(&[2, 1]))));
        assert_eq!(mask.get(2), None);
    }
}
