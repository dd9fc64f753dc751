//! Who may call: tokens, application users, impersonation and the
//! plug-in bypass privilege.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn tokens_must_be_for_the_environment_and_current() {
    let w = World::start().await;
    // No token: 401 with the authority in the challenge.
    let resp = w.http.get(w.api("WhoAmI")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!(
            "Bearer authorization_uri={}/{TENANT_ID}/oauth2/authorize",
            w.emu.base_url()
        )),
        "{challenge}"
    );
    assert_eq!(resp.headers()["odata-version"], "4.0");
    // A token for another environment: 401.
    let (_, other) = w
        .client_credentials_as(
            APP_ID,
            &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
            &format!("{}/.default", w.env2_url),
        )
        .await;
    let (s, _, _) = w
        .dv(
            other["access_token"].as_str().unwrap(),
            Method::GET,
            "WhoAmI",
            None,
            &[],
        )
        .await;
    assert_eq!(s, 401);
    // Expired: move the clock past the token's lifetime.
    let token = w.dv_token().await;
    w.control(
        Method::PATCH,
        "settings",
        Some(json!({"clock_offset_secs": 6 * 3600})),
    )
    .await;
    assert_eq!(w.get(&token, "WhoAmI").await.0, 401);
}

#[tokio::test]
async fn tokens_from_another_or_an_unknown_tenant_are_refused() {
    let w = World::start().await;
    let token = w.dv_token().await;
    assert_eq!(w.get(&token, "WhoAmI").await.0, 200);
    // The right `aud`, issued by another tenant of the emulator or by one it
    // does not know: Dataverse's 401 with its challenge.
    let fabrikam = fabrikam_id(&w).await;
    for tid in [fabrikam.as_str(), "99999999-9999-9999-9999-999999999999"] {
        let resp = w
            .http
            .get(w.api("WhoAmI"))
            .bearer_auth(from_tenant(&w.emu, &token, tid))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{tid}");
        assert!(resp.headers().contains_key("www-authenticate"), "{tid}");
    }
    // `iss` and `tid` must agree.
    let mut c = jwt_claims(&token);
    c["iss"] = json!(format!("https://sts.windows.net/{fabrikam}/"));
    assert_eq!(w.get(&w.emu.sign_token(&c), "WhoAmI").await.0, 401);
}

#[tokio::test]
async fn the_seeded_application_user_answers_who_am_i() {
    let w = World::start().await;
    let token = w.dv_token().await;
    // The seeded application user answers WhoAmI.
    let (s, h, who) = w.get(&token, "WhoAmI").await;
    assert_eq!(s, 200, "{who}");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json; odata.metadata=minimal")
    );
    assert!(
        who["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    );
    for f in ["UserId", "BusinessUnitId", "OrganizationId"] {
        assert!(
            uuid::Uuid::parse_str(who[f].as_str().unwrap()).is_ok(),
            "{f}"
        );
    }
    assert!(
        h.contains_key("x-ms-dop-hint")
            && h.contains_key("x-ms-ratelimit-burst-remaining-xrm-requests")
    );
}

#[tokio::test]
async fn application_users_need_a_systemuser_and_a_role() {
    let w = World::start().await;
    // An app without an application user: 403 0x80040220.
    let cert = TestCert::generate("no-app-user");
    let (_, app) = w.control(Method::POST, "apps", Some(json!({"tenant": "contoso", "display_name": "later", "certificates": [cert.cert_pem]}))).await;
    let client = app["app_id"].as_str().unwrap().to_string();
    let (s, t) = w.cert_token(&client, &cert).await;
    assert_eq!(s, 200);
    let later = t["access_token"].as_str().unwrap().to_string();
    let (s, _, e) = w.get(&later, "WhoAmI").await;
    assert_eq!(s, 403);
    assert_eq!(e["error"]["code"], "0x80040220");

    // A delegated admin creates its application user and gives it a role.
    let admin = w
        .sign_in(ADMIN, &format!("{}/user_impersonation", w.env_url))
        .await;
    let at = admin["access_token"].as_str().unwrap();
    let (_, _, bus) = w
        .get(
            at,
            "businessunits?$select=businessunitid,name&$filter=_parentbusinessunitid_value eq null",
        )
        .await;
    let bu = bus["value"][0]["businessunitid"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, h, _) = w
        .send(at, Method::POST, "systemusers", json!({"applicationid": client, "businessunitid@odata.bind": format!("/businessunits({bu})"), "firstname": "Sync", "lastname": "Service"}))
        .await;
    assert_eq!(s, 204);
    let user_url = h["odata-entityid"].to_str().unwrap().to_string();
    // Saved, it is named after its application, not "Sync Service".
    let (_, _, user) = w
        .get(
            at,
            &format!("{user_url}?$select=fullname,firstname").replace(&w.api(""), ""),
        )
        .await;
    assert_eq!(user["fullname"], "later", "{user}");
    assert_eq!(user["firstname"], "Sync");
    // Without a role: still 403.
    assert_eq!(w.get(&later, "WhoAmI").await.0, 403);
    let (_, _, roles) = w.get(at, &format!("roles?$select=roleid,name&$filter=name eq 'System Administrator' and _businessunitid_value eq {bu}")).await;
    let role = roles["value"][0]["roleid"].as_str().unwrap();
    let uid = user_url.rsplit('(').next().unwrap().trim_end_matches(')');
    let (s, _, b) = w
        .send(
            at,
            Method::POST,
            &format!("systemusers({uid})/systemuserroles_association/$ref"),
            json!({"@odata.id": w.api(&format!("roles({role})"))}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _, who) = w.get(&later, "WhoAmI").await;
    assert_eq!(s, 200);
    assert_eq!(who["UserId"], uid);
    // A user of the tenant who is not on the environment's list: 403.
    let (_, _, lookup) = w
        .get(
            at,
            &format!("systemusers?$filter=applicationid eq {client}&$select=systemuserid"),
        )
        .await;
    assert_eq!(lookup["value"][0]["systemuserid"], uid);
}

/// Alice, a Basic User of `contoso-dev`: her token, object id and
/// systemuser id.
async fn alice(w: &World) -> (String, String, String) {
    let alice = w
        .sign_in(USER, &format!("{}/user_impersonation", w.env_url))
        .await;
    let at = alice["access_token"].as_str().unwrap().to_string();
    let alice_oid = w.verify_with_jwks(&at).await["oid"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, who) = w.get(&at, "WhoAmI").await;
    assert_eq!(s, 200, "{who}");
    let alice_id = who["UserId"].as_str().unwrap().to_string();
    (at, alice_oid, alice_id)
}

#[tokio::test]
async fn basic_users_may_not_impersonate_or_bypass_plugins() {
    let w = World::start().await;
    let (at, alice_oid, _) = alice(&w).await;
    // A Basic User works with records but may not impersonate or bypass plug-ins.
    assert_eq!(
        w.send(&at, Method::POST, "accounts", json!({"name": "by alice"}))
            .await
            .0,
        204
    );
    let (s, _, e) = w
        .dv(
            &at,
            Method::GET,
            "WhoAmI",
            None,
            &[("CallerObjectId", &alice_oid)],
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (403, json!("0x80040220")));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prvActOnBehalfOfAnotherUser")
    );
    let (s, _, e) = w
        .dv(
            &at,
            Method::POST,
            "accounts",
            Some(json!({"name": "x"})),
            &[("MSCRM.BypassCustomPluginExecution", "true")],
        )
        .await;
    assert_eq!(s, 403);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prvBypassCustomPlugins")
    );
}

#[tokio::test]
async fn administrators_impersonate_and_bypass_plugins() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let (_, alice_oid, alice_id) = alice(&w).await;
    // The application user (System Administrator) impersonates Alice both ways.
    let (s, _, who) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("CallerObjectId", &alice_oid)],
        )
        .await;
    assert_eq!((s, who["UserId"].clone()), (200, json!(alice_id)));
    let (s, _, who) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("MSCRMCallerID", &alice_id)],
        )
        .await;
    assert_eq!((s, who["UserId"].clone()), (200, json!(alice_id)));
    let (_, _, b) = w
        .dv(
            &t,
            Method::POST,
            "accounts?$select=_createdby_value",
            Some(json!({"name": "for alice"})),
            &[
                ("CallerObjectId", &alice_oid),
                ("Prefer", "return=representation"),
            ],
        )
        .await;
    assert_eq!(b["_createdby_value"], alice_id.as_str());
    // Impersonating a Basic User drops the bypass privilege.
    let (s, _, _) = w
        .dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": "y"})),
            &[
                ("MSCRMCallerID", &alice_id),
                ("MSCRM.BypassCustomPluginExecution", "true"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        w.dv(
            &t,
            Method::POST,
            "accounts",
            Some(json!({"name": "z"})),
            &[("MSCRM.BypassCustomPluginExecution", "true")]
        )
        .await
        .0,
        204
    );
    let (s, _, _) = w
        .dv(
            &t,
            Method::GET,
            "WhoAmI",
            None,
            &[("MSCRMCallerID", "not-a-guid")],
        )
        .await;
    assert_eq!(s, 400);
}
