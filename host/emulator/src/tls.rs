//! A local certificate authority and server certificate for serving HTTPS,
//! so clients that insist on `https://` authorities (MSAL, azure-identity,
//! DynamicsWebApi) can talk to the emulator with only a CA file to trust.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The CA and the server chain it signed.
pub struct LocalTls {
    /// PEM of the CA certificate clients should trust.
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl LocalTls {
    /// Generates a CA and a server certificate for `localhost`, `127.0.0.1`,
    /// `::1` and any `extra_names` (DNS names or IP addresses).
    pub fn generate(extra_names: &[String]) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "dvhost emulator local CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "dvhost");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names = vec!["localhost".to_string()];
        names.extend(
            extra_names
                .iter()
                .filter(|n| n.parse::<IpAddr>().is_err())
                .cloned(),
        );
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        for ip in extra_names.iter().filter_map(|n| n.parse::<IpAddr>().ok()) {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = params.signed_by(&server_key, &issuer)?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("server key: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(LocalTls {
            ca_pem: ca_cert.pem(),
            server_config: Arc::new(config),
        })
    }
}
