//! `jsonwebtoken`'s cryptography on `ring`, the library that rustls (and so tonic's TLS) already
//! links, so that verifying tokens adds no second cryptography stack to the binary.
//!
//! Only the asymmetric algorithms are here: RS256/384/512, PS256/384/512, ES256 and ES384. HMAC
//! and EdDSA have no verifier, so a token that names them can never verify even if a caller skips
//! the algorithm checks of [`super::Verifier`].

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as ring_signature, EcdsaKeyPair, RsaKeyPair, UnparsedPublicKey};

/// The provider; [`install`] makes it the process default.
static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ed_pub_components_from_private_key: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
        compute_digest,
    },
};

/// Installs the `ring` provider as `jsonwebtoken`'s process default (once; later calls do nothing).
pub(super) fn install() {
    // `Err` means a provider is installed already: ours from an earlier call, which is the point.
    let _already_installed = RING_PROVIDER.install_default();
}

/// How `ring` verifies one JWS algorithm.
enum VerificationScheme {
    Ecdsa(&'static ring_signature::EcdsaVerificationAlgorithm),
    Rsa(&'static ring_signature::RsaParameters),
}

impl VerificationScheme {
    fn of(algorithm: Algorithm) -> JwtResult<Self> {
        Ok(match algorithm {
            Algorithm::ES256 => Self::Ecdsa(&ring_signature::ECDSA_P256_SHA256_FIXED),
            Algorithm::ES384 => Self::Ecdsa(&ring_signature::ECDSA_P384_SHA384_FIXED),
            Algorithm::RS256 => Self::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => Self::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => Self::Rsa(&ring_signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => Self::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => Self::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => Self::Rsa(&ring_signature::RSA_PSS_2048_8192_SHA512),
            // HMAC, EdDSA and whatever a later jsonwebtoken adds.
            _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
        })
    }
}

struct RingVerifier {
    algorithm: Algorithm,
    scheme: VerificationScheme,
    key: DecodingKeyKind,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match (&self.scheme, &self.key) {
            (VerificationScheme::Ecdsa(scheme), DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(*scheme, point).verify(message, signature)
            }
            (VerificationScheme::Rsa(scheme), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                ring_signature::RsaPublicKeyComponents { n, e }.verify(scheme, message, signature)
            }
            (VerificationScheme::Rsa(scheme), DecodingKeyKind::SecretOrDer(pkcs1_der)) => {
                UnparsedPublicKey::new(*scheme, pkcs1_der).verify(message, signature)
            }
            (VerificationScheme::Ecdsa(_), DecodingKeyKind::RsaModulusExponent { .. }) => {
                return Err(signature::Error::new());
            }
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        scheme: VerificationScheme::of(*algorithm)?,
        key: key.kind().clone(),
    }))
}

enum SigningScheme {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn ring_signature::RsaEncoding),
}

struct RingSigner {
    algorithm: Algorithm,
    scheme: SigningScheme,
    random: SystemRandom,
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match &self.scheme {
            SigningScheme::Ecdsa(key_pair) => key_pair
                .sign(&self.random, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            SigningScheme::Rsa(key_pair, padding) => {
                let mut signature = vec![0; key_pair.public().modulus_len()];
                key_pair
                    .sign(*padding, &self.random, message, &mut signature)
                    .map_err(|_| signature::Error::new())?;
                Ok(signature)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    let random = SystemRandom::new();
    let ecdsa = |signing: &'static ring_signature::EcdsaSigningAlgorithm| {
        EcdsaKeyPair::from_pkcs8(signing, key.as_bytes(), &random)
            .map(SigningScheme::Ecdsa)
            .map_err(|_| ErrorKind::InvalidEcdsaKey)
    };
    let rsa = |padding: &'static dyn ring_signature::RsaEncoding| {
        RsaKeyPair::from_der(key.as_bytes())
            .map(|key_pair| SigningScheme::Rsa(key_pair, padding))
            .map_err(|rejected| ErrorKind::InvalidRsaKey(rejected.to_string()))
    };
    let scheme = match algorithm {
        Algorithm::ES256 => ecdsa(&ring_signature::ECDSA_P256_SHA256_FIXED_SIGNING)?,
        Algorithm::ES384 => ecdsa(&ring_signature::ECDSA_P384_SHA384_FIXED_SIGNING)?,
        Algorithm::RS256 => rsa(&ring_signature::RSA_PKCS1_SHA256)?,
        Algorithm::RS384 => rsa(&ring_signature::RSA_PKCS1_SHA384)?,
        Algorithm::RS512 => rsa(&ring_signature::RSA_PKCS1_SHA512)?,
        Algorithm::PS256 => rsa(&ring_signature::RSA_PSS_SHA256)?,
        Algorithm::PS384 => rsa(&ring_signature::RSA_PSS_SHA384)?,
        Algorithm::PS512 => rsa(&ring_signature::RSA_PSS_SHA512)?,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        scheme,
        random,
    }))
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> JwtResult<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}
