//! Loading: what is not a dvhost plugin is refused with a clear message,
//! and compiled code is reused from the disk cache.

use dvhost_runtime::{Engine, EngineConfig, LoadError};
use dvhost_testkit::{HELLO, UNKNOWN_IMPORT};

use crate::common::{engine, guest_bytes};

#[tokio::test]
async fn an_unknown_import_is_rejected_by_name() {
    let e = engine()
        .load(&guest_bytes(UNKNOWN_IMPORT))
        .await
        .unwrap_err();
    match &e {
        LoadError::Incompatible(m) => assert!(m.contains("evil:net/raw"), "{m}"),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("does not fit dvhost's `plugin` world"),
        "{e}"
    );
}

#[tokio::test]
async fn core_modules_random_bytes_and_truncated_components_are_refused() {
    let core = b"\0asm\x01\0\0\0";
    assert_eq!(
        engine().load(core).await.unwrap_err(),
        LoadError::CoreModule
    );
    assert_eq!(engine().load(b"").await.unwrap_err(), LoadError::NotWasm);
    let mut random = vec![0u8; 4096];
    for (i, b) in random.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2654435761).to_le_bytes()[3];
    }
    assert_eq!(
        engine().load(&random).await.unwrap_err(),
        LoadError::NotWasm
    );
    let hello = guest_bytes(HELLO);
    let cut = &hello[..hello.len() / 2];
    assert!(matches!(
        engine().load(cut).await.unwrap_err(),
        LoadError::Invalid(_)
    ));
    let mut corrupt = hello.clone();
    for b in corrupt.iter_mut().skip(64).step_by(97) {
        *b ^= 0x5a;
    }
    assert!(engine().load(&corrupt).await.is_err());
}

#[tokio::test]
async fn a_second_engine_loads_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        ..EngineConfig::default()
    };
    let bytes = guest_bytes(HELLO);
    let first = Engine::new(config()).unwrap().load(&bytes).await.unwrap();
    assert!(!first.from_cache());
    let second = Engine::new(config()).unwrap().load(&bytes).await.unwrap();
    assert!(second.from_cache());
    assert_eq!(first.content_hash(), second.content_hash());
    assert_eq!(first.actions(), second.actions());
    let artifacts = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(artifacts, 1);
    // A damaged artifact is compiled again, not trusted.
    let artifact = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&artifact, b"garbage").unwrap();
    let third = Engine::new(config()).unwrap().load(&bytes).await.unwrap();
    assert!(!third.from_cache());
}

#[tokio::test]
async fn describe_gives_names_and_schemas() {
    let hello = engine().load(&guest_bytes(HELLO)).await.unwrap();
    let names: Vec<&str> = hello.actions().iter().map(|a| a.name.as_str()).collect();
    for expected in [
        "hello",
        "noop",
        "retrieve-account",
        "retrieve-account-record",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let action = hello.action("hello").unwrap();
    assert_eq!(
        action.input_schema["properties"]["name"]["type"], "string",
        "{}",
        action.input_schema
    );
}

#[tokio::test]
async fn a_session_reuses_one_instance_and_ends_after_a_trap() {
    use dvhost_runtime::{Capabilities, InvokeError};
    let hostile = crate::common::plugin(dvhost_testkit::HOSTILE).await;
    let hello = crate::common::plugin(HELLO).await;
    let mut session = hello.session(&Capabilities::unconnected()).await.unwrap();
    for name in ["Ada", "Grace"] {
        let out = session
            .invoke("hello", &format!(r#"{{"name":"{name}"}}"#))
            .await
            .unwrap();
        assert_eq!(
            crate::common::json(&out)["greeting"],
            format!("Hello, {name}!")
        );
    }
    assert!(matches!(
        session.invoke("nope", "{}").await,
        Err(InvokeError::UnknownAction(_))
    ));
    assert!(
        session.invoke("noop", "{}").await.is_ok(),
        "an action error leaves the session usable"
    );
    let mut session = hostile.session(&Capabilities::unconnected()).await.unwrap();
    assert!(matches!(
        session.invoke("panic", "{}").await,
        Err(InvokeError::Trap(_))
    ));
    assert!(matches!(
        session.invoke("env", "{}").await,
        Err(InvokeError::Instantiate(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_of_one_component_all_succeed_and_cache_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        ..EngineConfig::default()
    })
    .unwrap();
    let bytes = guest_bytes(HELLO);
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, bytes) = (engine.clone(), bytes.clone());
            tokio::spawn(async move { engine.load(&bytes).await })
        })
        .collect();
    for load in loads {
        load.await.unwrap().expect("every concurrent load succeeds");
    }
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".cwasm"), "{files:?}");
}
