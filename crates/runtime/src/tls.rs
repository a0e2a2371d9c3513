//! TLS and mutual TLS from the configured PEM files, for running outside a mesh (inside Istio the
//! sidecars provide mTLS and these stay unset).

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsSettings;

/// The server side: present our certificate; with a client CA, require client certificates.
pub(crate) fn server_config(tls: &TlsSettings) -> ServerTlsConfig {
    let config = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    match &tls.client_ca_pem {
        Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
        None => config,
    }
}

/// The client side: trust the configured CA and present our certificate as the client identity.
pub(crate) fn client_config(tls: &TlsSettings) -> ClientTlsConfig {
    let config = ClientTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    match &tls.client_ca_pem {
        Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
        None => config,
    }
}
