//! Each environment at its own origin, as in Microsoft's cloud, with the
//! path form `<emulator>/<unique_name>` still served.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn each_environment_listens_at_its_own_origin() {
    let w = World::start().await;
    let port = w.emu.local_addr().port();
    for url in [&w.env_url, &w.env2_url] {
        let parsed = url::Url::parse(url).unwrap();
        assert_eq!(parsed.path(), "/", "a bare origin: {url}");
        assert_ne!(parsed.port(), Some(port), "not the main listener: {url}");
    }
    assert_ne!(w.env_url, w.env2_url);
    // The state shows each environment's URL and origin.
    let (_, state) = w.control(Method::GET, "state", None).await;
    let dev = state["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["unique_name"] == "contoso-dev")
        .unwrap()
        .clone();
    assert_eq!(dev["url"], w.env_url);
    assert_eq!(dev["origin"], w.env_url);

    // A token whose `aud` is the origin works there, with and without the
    // trailing slash on the service root, and `@odata.context` names it.
    let token = w.dv_token().await;
    assert_eq!(jwt_claims(&token)["aud"], w.env_url);
    for root in ["api/data/v9.2", "api/data/v9.2/"] {
        let resp = w
            .http
            .get(format!("{}/{root}", w.env_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{root}");
    }
    let (s, _, who) = w.get(&token, "WhoAmI").await;
    assert_eq!(s, 200, "{who}");
    let context = who["@odata.context"].as_str().unwrap();
    assert!(
        context.starts_with(&format!("{}/api/data/v9.2/$metadata", w.env_url)),
        "{context}"
    );
    // Other paths at an environment's origin are not found.
    let resp = w
        .http
        .get(format!("{}/{TENANT_ID}/oauth2/v2.0/token", w.env_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn the_path_form_keeps_working() {
    let w = World::start().await;
    let path_url = format!("{}/contoso-dev", w.emu.base_url());
    let scope = format!("{path_url}/.default");
    let (s, b) = w
        .client_credentials_as(
            APP_ID,
            &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
            &scope,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let path_token = b["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&path_token)["aud"], path_url);
    let origin_token = w.dv_token().await;
    // Either token works at either address of the environment.
    for token in [&path_token, &origin_token] {
        for base in [&path_url, &w.env_url] {
            let resp = w
                .http
                .get(format!("{base}/api/data/v9.2/WhoAmI"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{base}");
        }
    }
    // The path form's answers name the path form.
    let resp = w
        .http
        .get(format!("{path_url}/api/data/v9.2/WhoAmI"))
        .bearer_auth(&path_token)
        .send()
        .await
        .unwrap();
    let who: Value = resp.json().await.unwrap();
    assert!(
        who["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{path_url}/api/data/v9.2/")),
        "{who}"
    );
}

#[tokio::test]
async fn environments_added_later_get_their_own_origin() {
    let w = World::start().await;
    let (s, env) = w
        .control(
            Method::POST,
            "environments",
            Some(
                json!({"tenant": "contoso", "unique_name": "contoso-test", "app_users": [APP_ID]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{env}");
    let url = env["url"].as_str().unwrap().to_string();
    assert_eq!(
        w.emu.environment_url("contoso-test").as_deref(),
        Some(url.as_str())
    );
    let (s, b) = w
        .client_credentials_as(
            APP_ID,
            &rs256(&w.cert, &claims(&w.token_url(), APP_ID)),
            &format!("{url}/.default"),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let resp = w
        .http
        .get(format!("{url}/api/data/v9.2/WhoAmI"))
        .bearer_auth(b["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn environment_urls_survive_a_restart_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let seed = dvhost_emulator::Seed {
        tenants: vec![tenant("contoso", Some(TENANT_ID))],
        environments: vec![env("contoso", "contoso-dev", vec![])],
        ..Default::default()
    };
    let emu = dvhost_emulator::EmulatorBuilder::new()
        .seed(seed)
        .state_file(&path)
        .start()
        .await
        .unwrap();
    let before = emu.environment_url("contoso-dev").unwrap();
    emu.shutdown().await;
    let emu = dvhost_emulator::EmulatorBuilder::new()
        .state_file(&path)
        .start()
        .await
        .unwrap();
    assert_eq!(emu.environment_url("contoso-dev").unwrap(), before);
    // Its listener is back: without a token, Dataverse's 401.
    let resp = reqwest::get(format!("{before}/api/data/v9.2/WhoAmI"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    emu.shutdown().await;
}
