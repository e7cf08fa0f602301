//! The certificates a test API server needs, generated fresh for every server: nothing secret
//! is committed, and no two test servers trust each other's clients.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub key_pem: String,
}

/// Everything kube-apiserver and its admin client need.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA that signed every certificate below; clients trust it, the server checks client
    /// certificates against it.
    pub ca: CertPair,
    /// The CA certificate in DER, as TLS libraries take trust roots.
    pub ca_der: Vec<u8>,
    /// The server's certificate, valid for `localhost` and the given IPs.
    pub serving: CertPair,
    /// A client certificate in group `system:masters` (RBAC's superuser group), for the admin
    /// kubeconfig the tests use.
    pub admin: CertPair,
    /// The ECDSA P-256 key that signs ServiceAccount tokens (PKCS#8 PEM).
    pub service_account_key_pem: String,
    /// Its public half (SPKI PEM), with which the server verifies those tokens.
    pub service_account_pub_pem: String,
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[error("generating the test API server's {what}: {source}")]
pub struct PkiError {
    what: &'static str,
    source: rcgen::Error,
}

fn ctx<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, PkiError> {
    r.map_err(|source| PkiError { what, source })
}

/// The admin client's user name (its certificate's common name).
pub const ADMIN_USER: &str = "ferrolb-test-admin";

impl Pki {
    /// Generates a CA, a serving certificate for `localhost` and `server_ips`, an admin client
    /// certificate, and a service-account signing key (all ECDSA P-256).
    pub fn generate(server_ips: &[IpAddr]) -> Result<Self, PkiError> {
        let ca_key = ctx("CA key", KeyPair::generate())?;
        let mut ca_params = ctx("CA params", CertificateParams::new(Vec::<String>::new()))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ferrolb-test-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ctx("CA certificate", ca_params.self_signed(&ca_key))?;
        let ca = CertPair {
            cert_pem: ca_cert.pem(),
            key_pem: ca_key.serialize_pem(),
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = ctx("serving key", KeyPair::generate())?;
        let mut serving_params = ctx(
            "serving params",
            CertificateParams::new(vec!["localhost".to_string()]),
        )?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params
            .subject_alt_names
            .extend(server_ips.iter().copied().map(SanType::IpAddress));
        serving_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = ctx(
            "serving certificate",
            serving_params.signed_by(&serving_key, &issuer),
        )?;

        let admin_key = ctx("admin key", KeyPair::generate())?;
        let mut admin_params = ctx("admin params", CertificateParams::new(Vec::<String>::new()))?;
        admin_params
            .distinguished_name
            .push(DnType::CommonName, ADMIN_USER);
        admin_params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = ctx(
            "admin client certificate",
            admin_params.signed_by(&admin_key, &issuer),
        )?;

        let sa_key = ctx("service-account signing key", KeyPair::generate())?;
        Ok(Self {
            ca_der: ca_cert.der().to_vec(),
            ca,
            serving: CertPair {
                cert_pem: serving_cert.pem(),
                key_pem: serving_key.serialize_pem(),
            },
            admin: CertPair {
                cert_pem: admin_cert.pem(),
                key_pem: admin_key.serialize_pem(),
            },
            service_account_pub_pem: sa_key.public_key_pem(),
            service_account_key_pem: sa_key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_pem_of_the_right_kind() {
        let ips = [
            "127.0.0.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        ];
        let pki = Pki::generate(&ips).expect("generate");
        for pem in [&pki.ca.cert_pem, &pki.serving.cert_pem, &pki.admin.cert_pem] {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        for pem in [
            &pki.serving.key_pem,
            &pki.admin.key_pem,
            &pki.service_account_key_pem,
        ] {
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        }
        assert!(pki
            .service_account_pub_pem
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        // Fresh keys every time: two servers never share a CA.
        let other = Pki::generate(&ips).expect("generate");
        assert_ne!(pki.ca.cert_pem, other.ca.cert_pem);
    }
}
