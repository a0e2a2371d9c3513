//! Fulfillment rules, applied where requests enter: a shipment has at least one line, each SKU
//! once and at least one unit; its address can be printed on a label; and its status moves one
//! step forward at a time, PENDING → PACKED → SHIPPED → DELIVERED, or to CANCELLED before it ships.

use crowdcrunch_proto::fulfillment::v1 as pb;
use crowdcrunch_proto::rules;
use crowdcrunch_proto::r#type::v1 as types;
use crowdcrunch_runtime::idempotency::RequestId;
use crowdcrunch_runtime::pagination::{self, PageRequest, PageTokens};
use crowdcrunch_runtime::status::FieldViolation;

/// The longest tracking number.
const MAX_TRACKING_NUMBER_LEN: usize = 64;
/// The most lines one shipment may have.
const MAX_LINES: usize = 1000;
/// Checks the shape of an id (`raw`, the value of `field`) by the one id rule. Whether it exists
/// is found out later.
fn checked_id(raw: &str, field: &str) -> Result<String, FieldViolation> {
    FieldViolation::check(field, rules::id_problem(raw))?;
    Ok(raw.to_owned())
}

/// A shipment id as given; only its shape is checked (an unknown id is NOT_FOUND later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentId(String);

impl ShipmentId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of an order (another service's); only its shape is checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        checked_id(raw, field).map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product's SKU, by the one SKU rule (`crowdcrunch_proto::rules::sku_problem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Checks `raw` as the value of `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        FieldViolation::check(field, rules::sku_problem(raw))?;
        Ok(Self(raw.to_owned()))
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Units of one product in a parcel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    pub sku: Sku,
    /// How many, at least 1.
    pub quantity: i32,
}

/// An address that can be printed on a label, as `crowdcrunch-proto` defines it for every service
/// (`Address::problems`): recipient, first line, city and an ISO 3166-1 alpha-2 country code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingAddress(types::Address);

impl ShippingAddress {
    /// Checks `address` (the value of `field`).
    pub fn parse(
        address: Option<&types::Address>,
        field: &str,
    ) -> Result<Self, Vec<FieldViolation>> {
        let Some(address) = address else {
            return Err(vec![FieldViolation::new(field, "is required")]);
        };
        let violations: Vec<FieldViolation> = address
            .problems(field)
            .into_iter()
            .map(|(path, description)| FieldViolation::new(path, description))
            .collect();
        if violations.is_empty() {
            Ok(Self(address.clone()))
        } else {
            Err(violations)
        }
    }

    /// The checked address.
    pub fn as_proto(&self) -> &types::Address {
        &self.0
    }
}

/// A valid CreateShipment request.
#[derive(Debug)]
pub struct NewShipment {
    /// The order the goods belong to.
    pub order_id: OrderId,
    /// The customer they go to: the order's.
    pub customer_id: String,
    /// The exchange whose replacement goods these are; `None` for an order's own shipment.
    pub return_id: Option<String>,
    /// What is in the parcel: at least one line, each SKU once.
    pub lines: Vec<Line>,
    /// Where it goes.
    pub address: ShippingAddress,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::CreateShipmentRequest> for NewShipment {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::CreateShipmentRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        let Some(shipment) = &request.shipment else {
            violations.push(FieldViolation::new("shipment", "is required"));
            return Err(violations);
        };
        let order_id = OrderId::parse(&shipment.order_id, "shipment.order_id")
            .map_err(|v| violations.push(v))
            .ok();
        let customer_id = checked_id(&shipment.customer_id, "shipment.customer_id")
            .map_err(|v| violations.push(v))
            .ok();
        let return_id = if shipment.return_id.is_empty() {
            None
        } else {
            checked_id(&shipment.return_id, "shipment.return_id")
                .map_err(|v| violations.push(v))
                .ok()
        };
        let lines = parse_lines(&shipment.lines, &mut violations);
        let address = ShippingAddress::parse(shipment.address.as_ref(), "shipment.address")
            .map_err(|v| violations.extend(v))
            .ok();
        match (order_id, customer_id, address) {
            (Some(order_id), Some(customer_id), Some(address)) if violations.is_empty() => {
                Ok(Self {
                    order_id,
                    customer_id,
                    return_id,
                    lines,
                    address,
                    request_id,
                })
            }
            _ => Err(violations),
        }
    }
}

/// The lines of a shipment, each checked; what is wrong goes to `violations`.
fn parse_lines(lines: &[pb::ShipmentLine], violations: &mut Vec<FieldViolation>) -> Vec<Line> {
    if lines.is_empty() {
        violations.push(FieldViolation::new(
            "shipment.lines",
            "at least one line is required",
        ));
        return Vec::new();
    }
    if lines.len() > MAX_LINES {
        violations.push(FieldViolation::new(
            "shipment.lines",
            format!("at most {MAX_LINES} lines"),
        ));
        return Vec::new();
    }
    let mut parsed: Vec<Line> = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let path = |name: &str| format!("shipment.lines[{index}].{name}");
        let sku = match Sku::parse(&line.sku, &path("sku")) {
            Ok(sku) if parsed.iter().any(|earlier| earlier.sku == sku) => {
                violations.push(FieldViolation::new(
                    path("sku"),
                    "appears in an earlier line; give each SKU once, with its total quantity",
                ));
                None
            }
            Ok(sku) => Some(sku),
            Err(violation) => {
                violations.push(violation);
                None
            }
        };
        if line.quantity < 1 {
            violations.push(FieldViolation::new(path("quantity"), "must be at least 1"));
        }
        if let Some(sku) = sku {
            parsed.push(Line {
                sku,
                quantity: line.quantity,
            });
        }
    }
    parsed
}

/// Where a shipment is in its life (`ShipmentStatus` without its UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    /// Waiting to be packed.
    Pending,
    /// Packed, waiting for the carrier.
    Packed,
    /// With the carrier.
    Shipped,
    /// Delivered (final).
    Delivered,
    /// Will not be sent (final).
    Cancelled,
}

impl ShipmentStatus {
    /// Every status, in the order of a shipment's life.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Packed,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// How it is stored (and named in messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Packed => "PACKED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The status stored as `stored`, if it is one.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == stored)
    }

    /// The API's enum value.
    pub fn to_proto(self) -> pb::ShipmentStatus {
        match self {
            Self::Pending => pb::ShipmentStatus::Pending,
            Self::Packed => pb::ShipmentStatus::Packed,
            Self::Shipped => pb::ShipmentStatus::Shipped,
            Self::Delivered => pb::ShipmentStatus::Delivered,
            Self::Cancelled => pb::ShipmentStatus::Cancelled,
        }
    }

    /// The status a request names, if it names one.
    fn from_proto(status: pb::ShipmentStatus) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|known| known.to_proto() == status)
    }

    /// The statuses a shipment moves to this one from, one step forward: the only moves there
    /// are. PENDING is where a shipment starts, so nothing moves to it.
    pub fn sources(self) -> &'static [Self] {
        match self {
            Self::Pending => &[],
            Self::Packed => &[Self::Pending],
            Self::Shipped => &[Self::Packed],
            Self::Delivered => &[Self::Shipped],
            Self::Cancelled => &[Self::Pending, Self::Packed],
        }
    }
}

impl std::fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid UpdateShipmentStatus request.
#[derive(Debug)]
pub struct StatusChange {
    /// The shipment.
    pub id: ShipmentId,
    /// Where it moves.
    pub to: ShipmentStatus,
    /// The carrier's tracking number, when it moves to SHIPPED; `None` otherwise.
    pub tracking_number: Option<String>,
    /// The idempotency key, if the client sent one.
    pub request_id: Option<RequestId>,
}

impl TryFrom<&pb::UpdateShipmentStatusRequest> for StatusChange {
    type Error = Vec<FieldViolation>;

    fn try_from(request: &pb::UpdateShipmentStatusRequest) -> Result<Self, Self::Error> {
        let mut violations = Vec::new();
        let id = ShipmentId::parse(&request.id, "id")
            .map_err(|v| violations.push(v))
            .ok();
        let to = match pb::ShipmentStatus::try_from(request.status) {
            Ok(pb::ShipmentStatus::Unspecified) => {
                violations.push(FieldViolation::new("status", "is required"));
                None
            }
            Ok(status) => ShipmentStatus::from_proto(status),
            Err(_) => {
                violations.push(FieldViolation::new("status", "is not a ShipmentStatus"));
                None
            }
        };
        let tracking = request.tracking_number.trim();
        let tracking_number = match to {
            Some(ShipmentStatus::Shipped) if tracking.is_empty() => {
                violations.push(FieldViolation::new(
                    "tracking_number",
                    "is required to move a shipment to SHIPPED",
                ));
                None
            }
            Some(ShipmentStatus::Shipped)
                if tracking.len() > MAX_TRACKING_NUMBER_LEN
                    || !tracking.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                violations.push(FieldViolation::new(
                    "tracking_number",
                    "must be at most 64 visible ASCII characters",
                ));
                None
            }
            Some(ShipmentStatus::Shipped) => Some(tracking.to_owned()),
            // Ignored for every other status.
            _ => None,
        };
        let request_id = RequestId::parse_optional(&request.request_id, "request_id")
            .map_err(|v| violations.push(v))
            .ok()
            .flatten();
        match (id, to) {
            (Some(id), Some(to)) if violations.is_empty() => Ok(Self {
                id,
                to,
                tracking_number,
                request_id,
            }),
            _ => Err(violations),
        }
    }
}

/// Checks the ids of a batch get: at most [`pagination::MAX_IDS`], each well-formed.
pub fn parse_shipment_ids(ids: &[String]) -> Result<Vec<ShipmentId>, Vec<FieldViolation>> {
    pagination::parse_ids(ids, "ids", ShipmentId::parse)
}

/// A valid ListShipments request: the page, and the orders whose shipments are listed (all when
/// empty), sorted and without duplicates.
#[derive(Debug)]
pub struct ShipmentQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only shipments of these orders; every order's when empty.
    pub order_ids: Vec<OrderId>,
}

impl ShipmentQuery {
    /// Checks `request`; its page token must be one `page_tokens` signed.
    pub fn parse(
        request: &pb::ListShipmentsRequest,
        page_tokens: &PageTokens,
    ) -> Result<Self, Vec<FieldViolation>> {
        let (page, order_ids) = pagination::parse_id_filtered_page(
            page_tokens,
            request.page_size,
            &request.page_token,
            "order_ids",
            &request.order_ids,
            OrderId::parse,
            OrderId::as_str,
        )?;
        Ok(Self { page, order_ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_storage_and_the_api() {
        for status in ShipmentStatus::ALL {
            assert_eq!(ShipmentStatus::parse(status.as_str()), Some(status));
            assert_eq!(ShipmentStatus::from_proto(status.to_proto()), Some(status));
        }
    }

    #[test]
    fn only_final_statuses_lead_nowhere() {
        for status in ShipmentStatus::ALL {
            let onward = ShipmentStatus::ALL
                .into_iter()
                .filter(|next| next.sources().contains(&status))
                .count();
            let is_final = matches!(
                status,
                ShipmentStatus::Delivered | ShipmentStatus::Cancelled
            );
            assert_eq!(onward == 0, is_final, "{status}");
        }
    }
}
