//! Secrets at rest: loading the master key (environment, key file created
//! owner-only, refusals), API keys (minted, shown once, verified), and a
//! signed-in user's refresh token sealed for the store and resumed only by
//! its own issuer and user under the same master key. No secret appears in
//! any `Debug`, `Display` or error text.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use common::{ADMIN, PUBLIC_CLIENT, TENANT, soon};
use dvhost_dataverse::{
    Authority, DeviceSignIn, IdentityError, MasterKey, MasterKeyError, MasterKeyOrigin, NewApiKey,
    PresentedApiKey, SealedSignIn, UserTokens,
};
use dvhost_emulator::RunningEmulator;

const DISCOVERY: &str = "https://globaldisco.crm.dynamics.com/user_impersonation";
const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_environment_wins_over_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    let (key, origin) = MasterKey::load(Some(KEY_B64), &file).unwrap();
    assert_eq!(origin, MasterKeyOrigin::Environment);
    assert_eq!(
        key.fingerprint(),
        MasterKey::from_base64(KEY_B64).unwrap().fingerprint()
    );
    assert!(
        !file.exists(),
        "no key file is created when the environment has the key"
    );

    for bad in ["not base64!", "AAECAw==", &format!("{KEY_B64}AAAA")] {
        let error = MasterKey::load(Some(bad), &file).unwrap_err();
        assert!(
            matches!(error, MasterKeyError::Environment { .. }),
            "{error:?}"
        );
        let text = format!("{error} {error:?}");
        assert!(text.contains("DVHOST_MASTER_KEY"), "{text}");
        assert!(!text.contains(bad), "the value is not repeated: {text}");
    }
}

#[test]
fn a_key_file_is_created_owner_only_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/dir/master.key");
    // An empty environment variable counts as unset.
    let (first, origin) = MasterKey::load(Some(""), &file).unwrap();
    assert_eq!(origin, MasterKeyOrigin::CreatedKeyFile);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&file).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    assert_eq!(bytes.len(), 32);

    let (again, origin) = MasterKey::load(None, &file).unwrap();
    assert_eq!(origin, MasterKeyOrigin::KeyFile);
    assert_eq!(again.fingerprint(), first.fingerprint());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "never rewritten"
    );

    let other = MasterKey::load(None, &dir.path().join("other.key"))
        .unwrap()
        .0;
    assert_ne!(other.fingerprint(), first.fingerprint());
    assert_eq!(first.fingerprint().len(), 32);
    assert!(!format!("{first:?}").contains(text.trim()));
    assert!(!first.fingerprint().contains(&hex(&bytes)));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn unsafe_or_malformed_key_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    std::fs::write(&file, format!("{KEY_B64}\n")).unwrap();

    for wide in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(wide)).unwrap();
        let error = MasterKey::load(None, &file).unwrap_err();
        assert!(
            matches!(error, MasterKeyError::TooOpen { mode, .. } if mode == wide),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("chmod 600") && text.contains("master.key"),
            "{text}"
        );
        assert!(!text.contains(KEY_B64));
    }

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        MasterKey::load(None, &file).unwrap().1,
        MasterKeyOrigin::KeyFile
    );

    let short = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
    for (content, why) in [
        (short.to_string(), "32 bytes"),
        ("%%%".to_string(), "not base64"),
        ("A".repeat(5000), "longer"),
    ] {
        std::fs::write(&file, &content).unwrap();
        let error = MasterKey::load(None, &file).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(matches!(error, MasterKeyError::Malformed { .. }), "{text}");
        assert!(text.contains(why), "{text}");
        if content.len() > 10 {
            assert!(
                !text.contains(&content[..10]),
                "the content is not repeated: {text}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            content,
            "left alone"
        );
    }

    let error = MasterKey::load(None, dir.path()).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn api_keys_show_once_and_verify_in_their_own_form_only() {
    let key = NewApiKey::mint();
    let (id, hash) = (key.id().to_string(), key.hash());
    let debug = format!("{key:?}");
    let mut shown = Vec::new();
    key.show_once(&mut shown).unwrap();
    let shown = String::from_utf8(shown).unwrap();
    // The secret is base64url, which may itself hold '_'.
    let secret = &shown[format!("dvk_{id}_").len()..];
    assert_eq!(secret.len(), 43, "32 random bytes in base64url");
    assert!(debug.contains(&id) && !debug.contains(secret), "{debug}");

    let presented = PresentedApiKey::parse(&shown).unwrap();
    assert!(!format!("{presented:?}").contains(secret));
    assert!(presented.verify(&hash));
    assert!(!presented.verify(&[0; 32]));
    let error = PresentedApiKey::parse(&format!("{shown}x")).unwrap_err();
    assert!(!format!("{error} {error:?}").contains(secret));
}

struct SignInSetup {
    emu: RunningEmulator,
    sign_in: DeviceSignIn,
}

async fn sign_in_setup() -> SignInSetup {
    let emu = common::emulator(
        &common::generated("unused"),
        "device_code_interval_secs = 1",
    )
    .await;
    let sign_in = common::device_sign_in(&emu);
    SignInSetup { emu, sign_in }
}

impl SignInSetup {
    async fn signed_in(&self) -> UserTokens {
        let pending = self
            .sign_in
            .start(&[DISCOVERY, "offline_access", "openid"])
            .await
            .unwrap();
        let approver = common::approve_later(&self.emu, &pending.prompt().user_code);
        let tokens = self.sign_in.complete(pending, soon()).await.unwrap();
        approver.await.unwrap();
        tokens
    }
}

fn sign_in_error(error: IdentityError) -> String {
    match error {
        IdentityError::SignIn(why) => why,
        other => panic!("expected a sign-in error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_sealed_sign_in_resumes_only_for_its_user_issuer_and_master_key() {
    let s = sign_in_setup().await;
    let tokens = s.signed_in().await;
    assert_eq!(tokens.entra_tenant_id.as_deref(), Some(TENANT));
    let oid = tokens.oid.clone().unwrap();
    let master = MasterKey::from_base64(KEY_B64).unwrap();
    let sealed = tokens.seal_refresh_token(&master).unwrap();
    assert!(format!("{sealed:?}").starts_with("SealedSignIn("));
    let stored = SealedSignIn::from_bytes(sealed.as_bytes().to_vec());

    let resumed = s
        .sign_in
        .resume(&stored, &master, &oid, &[DISCOVERY], soon())
        .await
        .unwrap();
    assert_eq!(resumed.upn.as_deref(), Some(ADMIN));
    assert_eq!(resumed.oid.as_deref(), Some(oid.as_str()));
    assert!(resumed.has_refresh_token());

    let requests = s.emu.token_stats().requests;
    let other_user = "00000000-0000-0000-0000-00000000beef";
    let wrong_master = MasterKey::from_bytes([7; 32]);
    let organizations = DeviceSignIn::new(
        Authority::parse(s.emu.base_url()).unwrap(),
        "organizations",
        PUBLIC_CLIENT,
        common::http(&s.emu),
    )
    .unwrap();
    let mut damaged = stored.as_bytes().to_vec();
    damaged[20] ^= 1;
    let damaged = SealedSignIn::from_bytes(damaged);
    let refusals = [
        s.sign_in
            .resume(&stored, &master, other_user, &[DISCOVERY], soon())
            .await,
        s.sign_in
            .resume(&stored, &wrong_master, &oid, &[DISCOVERY], soon())
            .await,
        organizations
            .resume(&stored, &master, &oid, &[DISCOVERY], soon())
            .await,
        s.sign_in
            .resume(&damaged, &master, &oid, &[DISCOVERY], soon())
            .await,
    ];
    for refusal in refusals {
        let why = sign_in_error(refusal.unwrap_err());
        assert!(
            why.contains("master key") && why.contains("sign in again"),
            "{why}"
        );
    }
    let why = sign_in_error(
        s.sign_in
            .resume(&stored, &master, &oid, &[], soon())
            .await
            .unwrap_err(),
    );
    assert!(why.contains("scopes"), "{why}");
    assert_eq!(
        s.emu.token_stats().requests,
        requests,
        "no refusal reached Entra"
    );
}

#[tokio::test]
async fn a_sign_in_without_refresh_token_or_user_is_not_sealed() {
    let s = sign_in_setup().await;
    let pending = s.sign_in.start(&[DISCOVERY]).await.unwrap();
    let approver = common::approve_later(&s.emu, &pending.prompt().user_code);
    let tokens = s.sign_in.complete(pending, soon()).await.unwrap();
    approver.await.unwrap();
    let master = MasterKey::from_bytes([1; 32]);
    let why = sign_in_error(tokens.seal_refresh_token(&master).unwrap_err());
    assert!(why.contains("offline_access"), "{why}");
}
