//! Which peer service a transport names: the client certificate of native mTLS, or the SPIFFE id
//! that Istio's sidecar puts in `x-forwarded-client-cert` (trusted only inside the mesh).

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use super::MeshIdentity;

/// The header in which Envoy passes the caller's mTLS identity (XFCC).
pub const FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";

/// The service a client certificate (DER) names: its first DNS subject alternative name, else its
/// subject's common name. rustls has already verified the certificate against the client CA.
pub fn certificate_service(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let dns_name = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|names| {
            names
                .value
                .general_names
                .iter()
                .find_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
        });
    dns_name
        .or_else(|| {
            certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|name| name.as_str().ok().map(str::to_owned))
        })
        .filter(|name| !name.is_empty())
}

/// The service an XFCC value names: the `URI=spiffe://<domain>/ns/<ns>/sa/<account>` of its last
/// element (the immediate caller), the account without `mesh.account_prefix`.
pub fn mesh_service(xfcc: &str, mesh: &MeshIdentity) -> Option<String> {
    let element = xfcc.rsplit(',').next()?;
    let uri = element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.eq_ignore_ascii_case("uri")
            .then(|| value.trim_matches('"'))
    })?;
    let path = uri.strip_prefix("spiffe://")?;
    let (_, account) = path.rsplit_once("/sa/")?;
    let service = account.strip_prefix(mesh.account_prefix.as_str())?;
    (!service.is_empty() && !service.contains('/')).then(|| service.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_xfcc_element_names_the_caller_without_the_account_prefix() {
        let mesh = MeshIdentity {
            account_prefix: "crowdcrunch-".to_owned(),
        };
        let xfcc = "By=spiffe://cluster.local/ns/shop/sa/crowdcrunch-billing;\
                    Hash=abc;Subject=\"\";URI=spiffe://cluster.local/ns/shop/sa/crowdcrunch-shipping";
        assert_eq!(mesh_service(xfcc, &mesh).as_deref(), Some("shipping"));
        let chained = format!("URI=spiffe://cluster.local/ns/shop/sa/crowdcrunch-gateway,{xfcc}");
        assert_eq!(mesh_service(&chained, &mesh).as_deref(), Some("shipping"));
        for refused in [
            "URI=spiffe://cluster.local/ns/shop/sa/default",
            "URI=spiffe://cluster.local/ns/shop/sa/crowdcrunch-",
            "URI=https://example.com/sa/crowdcrunch-shipping",
            "Hash=abc",
        ] {
            assert_eq!(mesh_service(refused, &mesh), None, "{refused}");
        }
    }
}
