//! The manual connection flow (administrator request written and e-mailed
//! to a local SMTP server, then completed with a wrong and a right client
//! id) and the edit flow (a fresh sign-in of the editor, in the connection's
//! Entra tenant, required), against the in-process emulator and a store in
//! a temporary directory.

use std::time::{Duration, Instant};

use base64::Engine as _;
use dvhost::emulator::{EmulatorBuilder, RunningEmulator, Seed};
use dvhost::flows::edit::{self, ConnectionEdit, EditError, Editor, FRESH_SIGN_IN};
use dvhost::flows::manual::{
    self, MailOutcome, ManualConnection, ManualError, Services, SmtpSecurity, SmtpSettings,
};
use dvhost_dataverse::{Authority, Certificate, DeviceSignIn, GraphService, HttpClient, MasterKey};
use dvhost_store::{
    AuditOutcome, AuditQuery, ConnectionMode, ConnectionState, HistoryEvent, Name, NewConnection,
    Sealed, SignIn, Store, TenantId,
};
use mail_parser::MimeHeaders as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support;
use crate::support::smtp::smtp_server;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_TENANT: &str = "99999999-2222-3333-4444-555555555555";
/// The app the administrator registers by hand (known to the environment
/// as an application user from the start; registered with the manual
/// flow's certificate once it exists).
const MANUAL_CLIENT: &str = "bbbbbbbb-0000-0000-0000-000000000001";
/// An app registered with a certificate of its own.
const OTHER_CLIENT: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const WRONG_CLIENT: &str = "bbbbbbbb-0000-0000-0000-00000000dead";
const PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000003";
const OTHER_PUBLIC_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000004";
const ALICE: &str = "alice@contoso.onmicrosoft.com";
const BOB: &str = "bob@contoso.onmicrosoft.com";
const ALICE_ELSEWHERE: &str = "alice@fabrikam.onmicrosoft.com";
const ENVIRONMENT: &str = "contoso-dev";

struct World {
    emu: RunningEmulator,
    store: Store,
    master: MasterKey,
    tenant: TenantId,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let toml = format!(
        r#"
        [settings]
        device_code_interval_secs = 1
        [[tenants]]
        name = "contoso"
        id = "{TENANT}"
        [[tenants]]
        name = "fabrikam"
        id = "{OTHER_TENANT}"
        [[users]]
        tenant = "contoso"
        upn = "{ALICE}"
        [[users]]
        tenant = "contoso"
        upn = "{BOB}"
        [[users]]
        tenant = "fabrikam"
        upn = "{ALICE_ELSEWHERE}"
        [[apps]]
        tenant = "contoso"
        display_name = "dvhost cli"
        app_id = "{PUBLIC_CLIENT}"
        public_client = true
        [[apps]]
        tenant = "fabrikam"
        display_name = "dvhost cli"
        app_id = "{OTHER_PUBLIC_CLIENT}"
        public_client = true
        [[environments]]
        tenant = "contoso"
        unique_name = "{ENVIRONMENT}"
        app_users = ["{MANUAL_CLIENT}"]
        "#
    );
    let emu = EmulatorBuilder::new()
        .tls(true)
        .seed(Seed::from_toml(&toml, None).unwrap())
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("data")).await.unwrap();
    let master = MasterKey::from_bytes([7; 32]);
    store.check_master_key(&master.fingerprint()).await.unwrap();
    let tenant = store
        .create_tenant(&Name::parse("contoso").unwrap(), "Contoso")
        .await
        .unwrap()
        .id;
    World {
        emu,
        store,
        master,
        tenant,
        _dir: dir,
    }
}

impl World {
    fn http(&self) -> HttpClient {
        HttpClient::new(self.emu.ca_certificate_pem()).unwrap()
    }

    fn services(&self) -> Services {
        Services {
            authority: Authority::parse(self.emu.base_url()).unwrap(),
            graph: GraphService::parse(self.emu.base_url()).unwrap(),
            http: self.http(),
        }
    }

    fn request(&self, name: &str, admin_email: Option<&str>) -> ManualConnection {
        ManualConnection {
            tenant: self.tenant,
            name: Name::parse(name).unwrap(),
            environment_url: self.emu.environment_url(ENVIRONMENT).unwrap(),
            security_role: Some("Sales Integration".into()),
            admin_email: admin_email.map(str::to_string),
        }
    }

    /// What the administrator does in Entra: registers the app with the
    /// certificate from the request (its service principal comes with it).
    fn register_app(&self, client: &str, certificate_pem: &str) {
        support::register_app(&self.emu, "dvhost-contoso-sales", client, certificate_pem);
    }

    /// A real device-code sign-in of `upn` through the public client of
    /// `entra_tenant`, stored as `dvhost login` stores it, made at `at`.
    async fn sign_in(&self, entra_tenant: &str, client: &str, upn: &str, at: OffsetDateTime) {
        let authority = Authority::parse(self.emu.base_url()).unwrap();
        let device = DeviceSignIn::new(authority, entra_tenant, client, self.http()).unwrap();
        let scopes = [
            "https://graph.microsoft.com/.default",
            "offline_access",
            "openid",
        ];
        let pending = device.start(&scopes).await.unwrap();
        let control = support::control_client(&self.emu);
        let base_url = self.emu.base_url().to_string();
        let code = pending.prompt().user_code.clone();
        let upn_owned = upn.to_string();
        let approver = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            support::approve_device_code(&control, &base_url, &code, &upn_owned).await;
        });
        let tokens = device
            .complete(pending, Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
        approver.await.unwrap();
        let sealed = tokens.seal_refresh_token(&self.master).unwrap();
        let sign_in = SignIn {
            entra_tenant_id: tokens.entra_tenant_id.as_deref().unwrap().parse().unwrap(),
            user_oid: tokens.oid.as_deref().unwrap().parse().unwrap(),
            upn: tokens.upn.clone(),
            scope: tokens.scope.clone(),
            sealed_refresh_token: Sealed::new(sealed.as_bytes().to_vec()),
            signed_in_at: at,
        };
        assert_eq!(sign_in.entra_tenant_id.to_string(), entra_tenant);
        self.store.save_sign_in(&sign_in).await.unwrap();
    }

    /// Completes connection `id` with the contoso tenant and `client`.
    async fn complete(
        &self,
        id: dvhost_store::ConnectionId,
        client: Uuid,
    ) -> Result<dvhost_store::Connection, ManualError> {
        let tenant = TENANT.parse().unwrap();
        manual::complete(
            &self.store,
            &self.master,
            &self.services(),
            id,
            tenant,
            client,
            "user:ops",
        )
        .await
    }

    async fn audit(&self, action: &str) -> Vec<dvhost_store::NewAuditEntry> {
        let query = AuditQuery {
            tenant: Some(self.tenant),
            ..AuditQuery::default()
        };
        let page = self.store.audit(&query).await.unwrap();
        page.entries
            .into_iter()
            .map(|e| e.entry)
            .filter(|e| e.action == action)
            .collect()
    }
}

fn der_of_pem(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn manual_request_is_written_and_mailed_with_the_stored_certificate() {
    let w = world().await;
    let (port, inbox) = smtp_server();
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        from: "dvhost <dvhost@ops.test>".into(),
        credentials: None,
        timeout: Duration::from_secs(10),
    };
    let out = tempfile::tempdir().unwrap();
    let request = w.request("sales", Some("admin@contoso.test"));
    let created = manual::create_manual(
        &w.store,
        &w.master,
        &request,
        out.path(),
        Some(&smtp),
        "user:ops",
    )
    .await
    .unwrap();

    assert_eq!(
        created.mail,
        MailOutcome::Sent {
            to: "admin@contoso.test".into()
        }
    );
    let c = &created.connection;
    assert_eq!(
        (c.state, c.mode),
        (ConnectionState::Pending, ConnectionMode::Manual)
    );
    assert_eq!((c.entra_tenant_id, c.client_id), (None, None));
    assert_eq!(c.security_role.as_deref(), Some("Sales Integration"));

    // The stored certificate is the one in the request, its key only sealed.
    let stored = w.store.active_certificate(c.id).await.unwrap().unwrap();
    assert_eq!(stored.id, created.certificate.id);
    let stored_der = der_of_pem(&stored.certificate_pem);
    assert_eq!(std::fs::read(&created.files.cer).unwrap(), stored_der);
    assert_eq!(
        std::fs::read_to_string(&created.files.pem).unwrap(),
        stored.certificate_pem
    );
    let sealed = stored.sealed_private_key.as_bytes();
    assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"));
    let instructions = std::fs::read_to_string(&created.files.instructions).unwrap();
    for needle in [
        stored.sha1_thumbprint.as_str(),
        stored.sha256_thumbprint.as_str(),
        request.environment_url.trim_end_matches('/'),
        "Sales Integration",
        "contoso-sales.cer",
        "dvhost connection complete contoso/sales --tenant-id",
        "App registrations",
        "Application users",
    ] {
        assert!(
            instructions.contains(needle),
            "{needle} missing from:\n{instructions}"
        );
    }

    // The e-mail arrived with the certificate attached, byte for byte.
    let parsed = inbox.only_message_to("admin@contoso.test");
    assert!(parsed.subject().unwrap().contains("contoso/sales"));
    assert!(
        parsed
            .body_text(0)
            .unwrap()
            .contains(&stored.sha1_thumbprint)
    );
    let attachment = parsed.attachments().next().expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("contoso-sales.cer"));
    assert_eq!(attachment.contents(), stored_der.as_slice());

    let history = w.store.connection_history(c.id).await.unwrap();
    let events: Vec<HistoryEvent> = history.iter().map(|h| h.event).collect();
    assert_eq!(
        events,
        [HistoryEvent::Created, HistoryEvent::CertificateAdded]
    );
    assert_eq!(w.audit("connection.create_manual").await.len(), 1);

    // The name is now taken.
    let again =
        manual::create_manual(&w.store, &w.master, &request, out.path(), None, "user:ops").await;
    assert!(
        matches!(again, Err(ManualError::NameTaken { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn complete_reports_a_wrong_client_id_and_accepts_the_right_one() {
    let w = world().await;
    let out = tempfile::tempdir().unwrap();
    let request = w.request("sales", Some("admin@contoso.test"));
    let created =
        manual::create_manual(&w.store, &w.master, &request, out.path(), None, "user:ops")
            .await
            .unwrap();
    assert_eq!(created.mail, MailOutcome::NotConfigured);
    w.register_app(MANUAL_CLIENT, &created.request.pem);
    let id = created.connection.id;
    let tenant: Uuid = TENANT.parse().unwrap();

    let wrong = w
        .complete(id, WRONG_CLIENT.parse().unwrap())
        .await
        .unwrap_err();
    let text = wrong.to_string();
    assert!(
        matches!(
            wrong,
            ManualError::Refused {
                aadsts: Some(700016),
                ..
            }
        ),
        "{wrong:?}"
    );
    assert!(
        text.contains(&format!(
            "no application with client id {WRONG_CLIENT} in tenant {TENANT}: check the client id"
        )),
        "{text}"
    );
    let pending = w.store.connection(id).await.unwrap().unwrap();
    assert_eq!(pending.state, ConnectionState::Pending);
    assert_eq!(pending.client_id, None, "a refused answer is not kept");
    let last = w.store.connection_history(id).await.unwrap().pop().unwrap();
    assert!(
        last.detail["reason"]
            .as_str()
            .unwrap()
            .contains(WRONG_CLIENT),
        "{last:?}"
    );

    // An app registered with another certificate than the request's.
    let other = Certificate::generate("not the request's", Certificate::default_validity());
    w.register_app(OTHER_CLIENT, &other.unwrap().pem());
    let no_cert = w.complete(id, OTHER_CLIENT.parse().unwrap()).await;
    let Err(ManualError::Refused {
        aadsts: Some(700027),
        cause,
        ..
    }) = no_cert
    else {
        panic!("expected AADSTS700027, got {no_cert:?}");
    };
    assert!(
        cause.contains("does not hold this connection's certificate"),
        "{cause}"
    );
    assert!(
        cause.contains(&created.certificate.sha1_thumbprint),
        "{cause}"
    );

    let client: Uuid = MANUAL_CLIENT.parse().unwrap();
    let active = w.complete(id, client).await.unwrap();
    assert_eq!(active.state, ConnectionState::Active);
    assert_eq!(
        (active.entra_tenant_id, active.client_id),
        (Some(tenant), Some(client))
    );
    let cert = w.store.active_certificate(id).await.unwrap().unwrap();
    assert!(cert.last_used_at.is_some());
    let audit = w.audit("connection.complete").await;
    let outcomes: Vec<AuditOutcome> = audit.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AuditOutcome::Success,
            AuditOutcome::Denied,
            AuditOutcome::Denied
        ],
        "newest first: the right answer, the app without the certificate, the wrong client id"
    );

    // An active connection is not completed twice.
    let twice = w.complete(id, client).await;
    assert!(
        matches!(twice, Err(ManualError::WrongConnection { .. })),
        "{twice:?}"
    );
}

/// An automatic connection in the contoso Entra tenant, as the edit tests
/// start from.
async fn connection(w: &World) -> dvhost_store::Connection {
    let new = NewConnection {
        tenant: w.tenant,
        name: Name::parse("sales").unwrap(),
        environment_url: w.emu.environment_url(ENVIRONMENT).unwrap(),
        entra_tenant_id: Some(TENANT.parse().unwrap()),
        client_id: Some(MANUAL_CLIENT.parse().unwrap()),
        security_role: Some("Basic User".into()),
        mode: ConnectionMode::Automatic,
    };
    w.store.create_connection(new, "system").await.unwrap()
}

fn role_edit() -> ConnectionEdit {
    ConnectionEdit {
        security_role: Some("Sales Integration".into()),
        name: Some(Name::parse("sales-eu").unwrap()),
        ..ConnectionEdit::default()
    }
}

/// Checks a refusal left the connection as it was and was audited.
async fn assert_refused(w: &World, before: &dvhost_store::Connection, denied: usize) {
    let after = w.store.connection(before.id).await.unwrap().unwrap();
    assert_eq!(&after, before, "a refused edit changes nothing");
    let audit = w.audit("connection.edit").await;
    assert_eq!(audit.len(), denied);
    assert!(
        audit.iter().all(|e| e.outcome == AuditOutcome::Denied),
        "{audit:?}"
    );
}

#[tokio::test]
async fn edit_is_refused_without_sign_in_with_another_users_or_tenants_or_a_stale_one() {
    let w = world().await;
    let c = connection(&w).await;
    let alice = Editor::SignInName(ALICE.into());
    let now = OffsetDateTime::now_utc();

    let none = edit::edit(&w.store, c.id, &alice, role_edit(), now).await;
    assert!(
        matches!(none, Err(EditError::NotSignedIn { .. })),
        "{none:?}"
    );
    assert_refused(&w, &c, 1).await;

    w.sign_in(TENANT, PUBLIC_CLIENT, BOB, now).await;
    let others = edit::edit(&w.store, c.id, &alice, role_edit(), now).await;
    assert!(
        matches!(others, Err(EditError::NotSignedIn { .. })),
        "{others:?}"
    );
    assert_refused(&w, &c, 2).await;

    w.sign_in(OTHER_TENANT, OTHER_PUBLIC_CLIENT, ALICE_ELSEWHERE, now)
        .await;
    let elsewhere = Editor::SignInName(ALICE_ELSEWHERE.into());
    let tenant = edit::edit(&w.store, c.id, &elsewhere, role_edit(), now)
        .await
        .unwrap_err();
    assert!(
        tenant
            .to_string()
            .contains(&format!("only to {OTHER_TENANT}")),
        "{tenant}"
    );
    assert_refused(&w, &c, 3).await;

    let stale = now - FRESH_SIGN_IN - time::Duration::minutes(1);
    w.sign_in(TENANT, PUBLIC_CLIENT, ALICE, stale).await;
    let old = edit::edit(&w.store, c.id, &alice, role_edit(), now).await;
    assert!(
        matches!(old, Err(EditError::Stale { minutes: 10, .. })),
        "{old:?}"
    );
    assert_refused(&w, &c, 4).await;
}

#[tokio::test]
async fn edit_is_accepted_with_the_editors_own_fresh_sign_in_and_audited() {
    let w = world().await;
    let c = connection(&w).await;
    let now = OffsetDateTime::now_utc();
    w.sign_in(TENANT, PUBLIC_CLIENT, BOB, now).await;
    w.sign_in(
        TENANT,
        PUBLIC_CLIENT,
        ALICE,
        now - time::Duration::minutes(2),
    )
    .await;

    let alice = Editor::SignInName("Alice@Contoso.onmicrosoft.com".into());
    let edited = edit::edit(&w.store, c.id, &alice, role_edit(), now)
        .await
        .unwrap();
    assert_eq!(edited.name.as_str(), "sales-eu");
    assert_eq!(edited.security_role.as_deref(), Some("Sales Integration"));

    let actor = format!("user:{ALICE}");
    let last = w
        .store
        .connection_history(c.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.event, last.actor.as_str()),
        (HistoryEvent::Edited, actor.as_str())
    );
    assert_eq!(last.detail["security_role"]["to"], "Sales Integration");
    let audit = w.audit("connection.edit").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].outcome, audit[0].actor.as_str()),
        (AuditOutcome::Success, actor.as_str())
    );
    assert_eq!(audit[0].detail["changed"]["name"]["to"], "sales-eu");
    assert_eq!(audit[0].detail["entra_tenant_id"], TENANT);

    // A bad environment URL is refused before anything changes.
    let bad = ConnectionEdit {
        environment_url: Some("http://dataverse.example.com".into()),
        ..ConnectionEdit::default()
    };
    let refused = edit::edit(&w.store, c.id, &alice, bad, now).await;
    assert!(
        matches!(refused, Err(EditError::Environment(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_relay_that_is_down_leaves_the_files_and_says_why() {
    let w = world().await;
    // A port nothing listens on any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        from: "dvhost@ops.test".into(),
        credentials: Some(("ops".into(), "relay-password".into())),
        timeout: Duration::from_secs(5),
    };
    assert!(!format!("{smtp:?}").contains("relay-password"));
    let out = tempfile::tempdir().unwrap();
    let request = w.request("sales", Some("admin@contoso.test"));
    let created = manual::create_manual(
        &w.store,
        &w.master,
        &request,
        out.path(),
        Some(&smtp),
        "user:ops",
    )
    .await
    .unwrap();
    match &created.mail {
        MailOutcome::Failed { to, reason } => {
            assert_eq!(to, "admin@contoso.test");
            assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
        }
        other => panic!("expected a failed e-mail, got {other:?}"),
    }
    assert!(created.files.cer.exists() && created.files.instructions.exists());
    let audit = w.audit("connection.create_manual").await;
    assert_eq!(audit[0].detail["mail"]["failed_to"], "admin@contoso.test");
}
