//! Per-domain TLS certificates of groups, through the public API: the control plane (upload
//! checks, cascades, the change signal, a second node following the store), the admin API
//! (every refusal answers 400 naming the problem and changes nothing; no read shows the key),
//! and the stores (sealed at rest in redb, export → import).
#![cfg(all(
    feature = "admin",
    feature = "tls",
    feature = "sealed",
    feature = "redb"
))]

mod common;

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use serde_json::{Value, json};
use stagegate::admin::AdminApi;
use stagegate::control::NewGroup;
use stagegate::model::{GroupId, Secret};
use stagegate::store::{Entity, MemoryStore, RedbStore, SealedStore, SecretsKey, Store, is_sealed};
use stagegate::{ControlError, ControlPlane, GatewayLayer};

const TOKEN: &str = "admin-test-token";

/// A self-signed certificate for `names`, valid from the start of `from` to the start of
/// `until`, and its PKCS#8 key, both PEM.
fn issue(names: &[&str], from: i32, until: i32) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A certificate for `names`, valid now for a century.
fn valid(names: &[&str]) -> (String, String) {
    issue(names, 2020, 2120)
}

/// The base64 body of a PEM key's first line: what must never appear in an answer.
fn key_marker(key_pem: &str) -> String {
    key_pem.lines().nth(1).unwrap()[..40].to_owned()
}

async fn group(cp: &ControlPlane, name: &str, domains: &[&str]) -> GroupId {
    cp.create_group(NewGroup {
        name: name.into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        ..Default::default()
    })
    .await
    .unwrap()
    .id
}

struct Admin {
    api: AdminApi,
    control: Arc<ControlPlane>,
}

impl Admin {
    async fn new() -> Self {
        let control = Arc::new(ControlPlane::open(MemoryStore::new()).await.unwrap());
        let gateway = GatewayLayer::new(control.snapshot_handle()).standalone();
        let api = AdminApi::new(Arc::clone(&control), Secret::new(TOKEN), gateway)
            .with_body_limit(256 * 1024);
        Self { api, control }
    }

    async fn raw(&self, method: &str, path: &str, body: impl Into<Body>) -> common::Got {
        common::admin_call(self.api.router(), TOKEN, method, path, body).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> common::Got {
        self.raw(
            method,
            path,
            body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await
    }

    /// Every record, as the store holds them (the export without its timestamp).
    async fn state(&self) -> Value {
        let mut v = serde_json::to_value(self.control.export().await).unwrap();
        v["exported_at"] = Value::Null;
        v
    }
}

#[tokio::test]
async fn admin_put_get_delete_and_no_read_shows_the_key() {
    let a = Admin::new().await;
    let g = group(
        &a.control,
        "cert_group",
        &["api.example.com", "www.example.com:8443"],
    )
    .await;
    let (cert, key) = valid(&["api.example.com", "*.example.com"]);
    let path = format!("/groups/{g}/domains/api.example.com/certificate");

    let put = a
        .call(
            "PUT",
            &path,
            Some(json!({"certificate": cert, "private_key": key})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let info = put.json();
    assert_eq!(info["domain"], "api.example.com");
    assert_eq!(info["group_id"], g.to_string());
    assert_eq!(
        info["dns_names"],
        json!(["api.example.com", "*.example.com"])
    );
    assert_eq!(info["not_after"], "2120-01-01T00:00:00Z");
    assert_eq!(info["sha256_fingerprint"].as_str().unwrap().len(), 64);

    let got = a.call("GET", &path, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), info);
    // a port on the group's domain is part of its name in the path
    let www = a
        .call(
            "PUT",
            &format!("/groups/{g}/domains/www.example.com:8443/certificate"),
            Some(json!({"certificate": cert, "private_key": key})),
        )
        .await;
    assert_eq!(www.status, 200, "{}", www.text());
    let list = a
        .call("GET", &format!("/groups/{g}/certificates"), None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json().as_array().unwrap().len(), 2);

    // no read of the admin API shows the key, or the certificate text
    let marker = key_marker(&key);
    for read in [
        path.clone(),
        format!("/groups/{g}/certificates"),
        format!("/groups/{g}"),
        "/groups".to_owned(),
        "/config".to_owned(),
    ] {
        let got = a.call("GET", &read, None).await;
        assert_eq!(got.status, 200, "{read}: {}", got.text());
        let text = got.text();
        assert!(!text.contains(&marker), "{read} shows the key");
        assert!(!text.contains("PRIVATE KEY"), "{read} shows the key");
    }
    // the full export is a backup: it carries the key as it carries apps' secrets
    let export = a.call("GET", "/export", None).await.json();
    assert_eq!(export["domain_certificates"].as_array().unwrap().len(), 2);
    assert_eq!(export["domain_certificates"][0]["private_key"], key);

    // delete: 204, then gone
    let del = a.call("DELETE", &path, None).await;
    assert_eq!(del.status, 204, "{}", del.text());
    assert!(del.body.is_empty());
    let gone = a.call("GET", &path, None).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(gone.json()["code"], "NotFound");
    assert_eq!(a.call("DELETE", &path, None).await.status, 404);
}

#[tokio::test]
async fn admin_refusals_name_the_problem_and_change_nothing() {
    let a = Admin::new().await;
    let g = group(
        &a.control,
        "cert_group",
        &["api.example.com", "bare.example.com"],
    )
    .await;
    let (cert, key) = valid(&["api.example.com"]);
    let path = format!("/groups/{g}/domains/api.example.com/certificate");
    let first = a
        .call(
            "PUT",
            &path,
            Some(json!({"certificate": cert, "private_key": key})),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let before = a.state().await;

    let (other_cert, other_key) = valid(&["api.example.com"]);
    let (expired_cert, expired_key) = issue(&["api.example.com"], 2000, 2001);
    let (future_cert, future_key) = issue(&["api.example.com"], 2100, 2101);
    let (elsewhere_cert, elsewhere_key) = valid(&["shop.example.org"]);
    let huge = format!("{cert}{}", "#".repeat(70 * 1024));
    let cases: Vec<(String, String, u16, &str)> = vec![
        (
            path.clone(),
            json!({"certificate": "garbage", "private_key": key}).to_string(),
            400,
            "invalid certificate: no PEM `CERTIFICATE` block found",
        ),
        (
            path.clone(),
            json!({"certificate": cert, "private_key": "garbage"}).to_string(),
            400,
            "invalid private_key: no PEM private key block found",
        ),
        (
            path.clone(),
            json!({"certificate": cert, "private_key": other_key}).to_string(),
            400,
            "invalid private_key: does not match the certificate",
        ),
        (
            path.clone(),
            json!({"certificate": other_cert, "private_key": key}).to_string(),
            400,
            "invalid private_key: does not match the certificate",
        ),
        (
            path.clone(),
            json!({"certificate": expired_cert, "private_key": expired_key}).to_string(),
            400,
            "invalid certificate: expired on 2001-01-01T00:00:00Z",
        ),
        (
            path.clone(),
            json!({"certificate": future_cert, "private_key": future_key}).to_string(),
            400,
            "invalid certificate: not valid before 2100-01-01T00:00:00Z",
        ),
        (
            path.clone(),
            json!({"certificate": elsewhere_cert, "private_key": elsewhere_key}).to_string(),
            400,
            "invalid certificate: does not cover domain `api.example.com` (it names `shop.example.org`)",
        ),
        (
            format!("/groups/{g}/domains/bare.example.com/certificate"),
            json!({"certificate": cert, "private_key": key}).to_string(),
            400,
            "invalid certificate: does not cover domain `bare.example.com`",
        ),
        (
            format!("/groups/{g}/domains/other.example.com/certificate"),
            json!({"certificate": cert, "private_key": key}).to_string(),
            400,
            "invalid domain: `other.example.com` is not a domain of group `cert_group` (its domains: api.example.com, bare.example.com)",
        ),
        (
            format!(
                "/groups/{}/domains/api.example.com/certificate",
                GroupId::generate()
            ),
            json!({"certificate": cert, "private_key": key}).to_string(),
            404,
            "not found",
        ),
        (
            path.clone(),
            json!({"certificate": huge, "private_key": key}).to_string(),
            400,
            "invalid certificate: ",
        ),
        (
            path.clone(),
            "{not json".to_owned(),
            400,
            "invalid JSON body",
        ),
        (
            path.clone(),
            json!({"certificate": cert}).to_string(),
            400,
            "invalid JSON body",
        ),
        (
            path.clone(),
            json!({"certificate": cert, "private_key": key, "chain": "x"}).to_string(),
            400,
            "invalid JSON body",
        ),
        (
            path.clone(),
            json!({"certificate": "x".repeat(300 * 1024), "private_key": key}).to_string(),
            413,
            "larger than",
        ),
    ];
    let marker = key_marker(&key);
    for (p, body, status, want) in cases {
        let got = a.raw("PUT", &p, body).await;
        let text = got.text();
        assert_eq!(got.status, status, "{p}: {text}");
        let message = got.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(want), "{p}: `{message}` lacks `{want}`");
        assert!(!text.contains(&marker), "a refusal repeats the key: {text}");
        assert_eq!(
            a.state().await,
            before,
            "{p}: a refusal changed something ({want})"
        );
    }
    // without the admin token: 401, and nothing changes
    let req = Request::builder()
        .method("PUT")
        .uri(&path)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"certificate": other_cert, "private_key": other_key}).to_string(),
        ))
        .unwrap();
    assert_eq!(common::oneshot(a.api.router(), req).await.status, 401);
    let req = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(common::oneshot(a.api.router(), req).await.status, 401);
    assert_eq!(a.state().await, before);
    // the first certificate is still the one served
    let info = a.call("GET", &path, None).await.json();
    assert_eq!(info, first.json());
}

#[tokio::test]
async fn replacing_and_the_group_cascades() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let g = group(&cp, "cert_group", &["a.example.com", "b.example.com"]).await;
    let (a1, ka1) = valid(&["a.example.com"]);
    let (a2, ka2) = valid(&["a.example.com"]);
    let (b, kb) = valid(&["b.example.com"]);
    let first = cp
        .set_domain_certificate(&g, "a.example.com", &a1, &ka1)
        .await
        .unwrap();
    // the domain as the group spells it, whatever the case given
    let second = cp
        .set_domain_certificate(&g, "A.Example.COM", &a2, &ka2)
        .await
        .unwrap();
    assert_eq!(second.domain, "a.example.com");
    assert_ne!(first.sha256_fingerprint, second.sha256_fingerprint);
    assert_eq!(
        cp.group_certificates(&g).await.unwrap(),
        vec![second.clone()]
    );
    cp.set_domain_certificate(&g, "b.example.com", &b, &kb)
        .await
        .unwrap();
    let served: Vec<String> = cp
        .domain_certificates()
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(served, ["a.example.com", "b.example.com"]);

    // dropping a domain from the group drops its certificate in the same commit
    let mut spec = NewGroup {
        name: "cert_group".into(),
        domains: vec!["b.example.com".into()],
        ..Default::default()
    };
    cp.update_group(&g, spec.clone()).await.unwrap();
    assert!(matches!(
        cp.domain_certificate(&g, "a.example.com").await,
        Err(ControlError::Validation(_))
    ));
    spec.domains.push("a.example.com".into());
    cp.update_group(&g, spec).await.unwrap();
    assert!(matches!(
        cp.domain_certificate(&g, "a.example.com").await,
        Err(ControlError::NotFound { .. })
    ));
    assert_eq!(cp.group_certificates(&g).await.unwrap().len(), 1);
    // a domain respelled is another domain: its certificate goes too
    cp.update_group(
        &g,
        NewGroup {
            name: "cert_group".into(),
            domains: vec!["B.example.com".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(cp.group_certificates(&g).await.unwrap().is_empty());
    assert!(cp.domain_certificates().await.is_empty());
    cp.set_domain_certificate(&g, "b.example.com", &b, &kb)
        .await
        .unwrap();

    // deleting the group deletes the rest
    cp.delete_group(&g).await.unwrap();
    assert!(
        !cp.records()
            .await
            .iter()
            .any(|r| matches!(r.value, Entity::DomainCertificate(_)))
    );
    assert!(cp.domain_certificates().await.is_empty());
}

#[tokio::test]
async fn a_second_node_sees_certificates_through_the_change_feed() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
    let g = group(&a, "cert_group", &["api.example.com"]).await;
    let b = ControlPlane::open_shared(Arc::clone(&store)).await.unwrap();
    let mut watch_b = b.watch_certificates();
    let mut watch_a = a.watch_certificates();

    let (cert, key) = valid(&["api.example.com"]);
    a.set_domain_certificate(&g, "api.example.com", &cert, &key)
        .await
        .unwrap();
    assert!(watch_a.has_changed().unwrap(), "the writing node signals");
    watch_a.borrow_and_update();
    assert!(!watch_b.has_changed().unwrap());
    assert!(b.domain_certificates().await.is_empty());

    b.follow().await.unwrap();
    assert!(watch_b.has_changed().unwrap(), "the following node signals");
    watch_b.borrow_and_update();
    let served = b.domain_certificates().await;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].0, "api.example.com");
    assert_eq!(
        served[0].1.cert[0],
        a.domain_certificates().await[0].1.cert[0]
    );

    a.delete_domain_certificate(&g, "api.example.com")
        .await
        .unwrap();
    b.follow().await.unwrap();
    assert!(watch_b.has_changed().unwrap());
    assert!(b.domain_certificates().await.is_empty());
}

#[tokio::test]
async fn sealed_at_rest_in_redb_and_restored_by_import() {
    let path = std::env::temp_dir().join(format!(
        "stagegate-domain-certificates-{}.redb",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let (secrets, _) = SecretsKey::generate().unwrap();
    let (cert, key) = valid(&["api.example.com"]);
    let g;
    {
        let raw = Arc::new(RedbStore::open(&path).unwrap());
        let sealed = SealedStore::open(Arc::clone(&raw), Some(secrets.clone()))
            .await
            .unwrap();
        let cp = ControlPlane::open(sealed).await.unwrap();
        g = group(&cp, "cert_group", &["api.example.com"]).await;
        cp.set_domain_certificate(&g, "api.example.com", &cert, &key)
            .await
            .unwrap();
        let at_rest = raw.load().await.unwrap();
        let stored = at_rest
            .records
            .iter()
            .find_map(|r| match &r.value {
                Entity::DomainCertificate(c) => Some(c.clone()),
                _ => None,
            })
            .expect("stored");
        assert!(
            is_sealed(stored.private_key.expose()),
            "the key is sealed at rest"
        );
        assert_eq!(stored.certificate, cert, "the certificate is public");
    }
    // reopened: without the key the store is refused, with it the certificate is served
    let raw = Arc::new(RedbStore::open(&path).unwrap());
    assert!(SealedStore::open(Arc::clone(&raw), None).await.is_err());
    let cp = ControlPlane::open(SealedStore::open(raw, Some(secrets)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(cp.domain_certificates().await.len(), 1);

    // export → import into a fresh node restores it; a damaged pair is refused whole
    let doc = cp.export().await;
    assert_eq!(doc.domain_certificates[0].private_key.expose(), key);
    let fresh = ControlPlane::open(MemoryStore::new()).await.unwrap();
    fresh.import(doc.clone()).await.unwrap();
    assert_eq!(
        fresh
            .domain_certificate(&g, "api.example.com")
            .await
            .unwrap(),
        cp.domain_certificate(&g, "api.example.com").await.unwrap()
    );
    let mut bad = doc.clone();
    let (_, other_key) = valid(&["api.example.com"]);
    bad.domain_certificates[0].private_key = Secret::new(other_key);
    let empty = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let err = empty.import(bad).await.unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(empty.records().await.is_empty());
    let mut unbound = doc;
    unbound.groups[0].domains.clear();
    let err = empty.import(unbound).await.unwrap_err();
    assert!(err.to_string().contains("without that domain"), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_configuration_plan_deletes_certificates_with_their_domain_or_group_and_says_so() {
    use stagegate::control::PlanScope;
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let g = group(&cp, "cert_group", &["a.example.com", "b.example.com"]).await;
    let (a, ka) = valid(&["a.example.com"]);
    let (b, kb) = valid(&["b.example.com"]);
    cp.set_domain_certificate(&g, "a.example.com", &a, &ka)
        .await
        .unwrap();
    cp.set_domain_certificate(&g, "b.example.com", &b, &kb)
        .await
        .unwrap();

    // the document leaves certificates out, and applying it as is keeps them
    let mut doc = cp.export_document().await;
    let plan = cp.plan(&doc, PlanScope::Whole).await.unwrap();
    assert!(plan.steps.is_empty(), "{:?}", plan.steps);
    assert!(!serde_json::to_string(&doc).unwrap().contains("PRIVATE KEY"));

    // a domain dropped from the group: its certificate goes, as a step of the plan
    doc.groups[0].domains = vec!["b.example.com".into()];
    let plan = cp.plan(&doc, PlanScope::Whole).await.unwrap();
    let steps: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    assert!(
        steps.contains(&"- certificate cert_group/a.example.com".to_owned()),
        "{steps:?}"
    );
    cp.apply(&plan).await.unwrap();
    assert_eq!(cp.group_certificates(&g).await.unwrap().len(), 1);

    // the group gone from the document: the rest goes with it
    doc.groups.clear();
    let plan = cp.plan(&doc, PlanScope::Whole).await.unwrap();
    let steps: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    assert!(
        steps.contains(&"- certificate cert_group/b.example.com".to_owned()),
        "{steps:?}"
    );
    cp.apply(&plan).await.unwrap();
    assert!(cp.domain_certificates().await.is_empty());
    assert!(cp.records().await.is_empty());
}

/// A TLS handshake over an in-memory pipe with server name `sni`, the server resolving by SNI
/// from `keys`; returns the leaf certificate the client was served (the client trusts `roots`).
async fn handshake(
    keys: Vec<(String, Arc<rustls::sign::CertifiedKey>)>,
    roots: &[&str],
    sni: &str,
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = rustls::server::ResolvesServerCertUsingSni::new();
    for (name, key) in keys {
        resolver
            .add(&name, (*key).clone())
            .map_err(|e| e.to_string())?;
    }
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    let mut trusted = rustls::RootCertStore::empty();
    for pem in roots {
        trusted
            .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trusted)
        .with_no_client_auth();
    let (c, s) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let server_side = tokio::spawn(async move { acceptor.accept(s).await.map(|_| ()) });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let stream = connector
        .connect(name, c)
        .await
        .map_err(|e| e.to_string())?;
    let _ = server_side.await;
    let (_, conn) = stream.get_ref();
    Ok(conn.peer_certificates().unwrap()[0].to_vec())
}

#[tokio::test]
async fn stored_certificates_serve_real_handshakes_by_server_name() {
    use rustls::pki_types::pem::PemObject as _;
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let g = group(
        &cp,
        "cert_group",
        &["api.example.com", "Shop.Example.com:8443"],
    )
    .await;
    let (api_cert, api_key) = valid(&["api.example.com"]);
    let (shop_cert, shop_key) = valid(&["*.example.com"]);
    cp.set_domain_certificate(&g, "api.example.com", &api_cert, &api_key)
        .await
        .unwrap();
    cp.set_domain_certificate(&g, "shop.example.com:8443", &shop_cert, &shop_key)
        .await
        .unwrap();
    let keys = cp.domain_certificates().await;
    let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["api.example.com", "shop.example.com"],
        "SNI names: no port, lower case"
    );

    let der = |pem: &str| {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    let roots = [api_cert.as_str(), shop_cert.as_str()];
    let served = handshake(keys.clone(), &roots, "api.example.com")
        .await
        .unwrap();
    assert_eq!(served, der(&api_cert));
    let served = handshake(keys.clone(), &roots, "shop.example.com")
        .await
        .unwrap();
    assert_eq!(served, der(&shop_cert));
    // a name no group domain has: no certificate (rustls's resolver has no default)
    assert!(handshake(keys, &roots, "other.example.com").await.is_err());
}

#[tokio::test]
async fn two_groups_sharing_a_domain_serve_the_certificate_uploaded_last() {
    let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
    let g1 = group(&cp, "first_group", &["api.example.com"]).await;
    let g2 = group(&cp, "second_group", &["API.example.com"]).await;
    let (c1, k1) = valid(&["api.example.com"]);
    let (c2, k2) = valid(&["api.example.com"]);
    cp.set_domain_certificate(&g1, "api.example.com", &c1, &k1)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = cp
        .set_domain_certificate(&g2, "api.example.com", &c2, &k2)
        .await
        .unwrap();
    assert_eq!(second.domain, "API.example.com", "the group's own spelling");
    let served = cp.domain_certificates().await;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].0, "api.example.com");
    let der = |pem: &str| {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    };
    assert_eq!(served[0].1.cert[0], der(&c2));
    // the second group's removed: the first one's is served again
    cp.delete_domain_certificate(&g2, "api.example.com")
        .await
        .unwrap();
    assert_eq!(cp.domain_certificates().await[0].1.cert[0], der(&c1));
}
