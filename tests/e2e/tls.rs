//! TLS termination: ALPN, SNI, client certificates, PEM errors, reload.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Version;

use crate::fixtures::process::check;
use crate::fixtures::tls::{client_config, tls_connect, tls_get, Ca, Leaf, PemDir};
use crate::fixtures::{Backend, TestGateway};

/// `[server.tls]` with one `{cert, key, server_names}` per entry.
fn tls_config(home: SocketAddr, certs: &[(&(String, String), &[&str])], extra: &str) -> String {
    let entries: Vec<String> = certs
        .iter()
        .map(|((cert, key), names)| {
            let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            format!("{{ cert = \"{cert}\", key = \"{key}\", server_names = [{}] }}", names.join(", "))
        })
        .collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[server.tls]
certificates = [{}]
{extra}

[registries.population]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{home}"]
"#,
        entries.join(", ")
    )
}

fn der(leaf: &Leaf) -> Vec<u8> {
    leaf.chain()[0].to_vec()
}

#[tokio::test]
async fn a_tls_client_gets_h2_by_alpn_and_the_certificate_for_its_server_name() {
    let ca = Ca::new("test CA");
    let (pop, biz) = (ca.leaf(&["rahvastik.example"]), ca.leaf(&["*.ariregister.example"]));
    let dir = PemDir::new();
    let (pop_files, biz_files) = (dir.leaf("pop", &pop), dir.leaf("biz", &biz));
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&tls_config(
        home.addr,
        &[(&pop_files, &["rahvastik.example"]), (&biz_files, &["*.ariregister.example"])],
        "",
    ))
    .await;

    let h2 = client_config(&ca, &[b"h2", b"http/1.1"], None);
    let reply = tls_get(h2, gw.addr, "rahvastik.example", "/people/1").await.unwrap();
    assert_eq!(reply.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.peer_cert, der(&pop));
    assert_eq!(reply.reply.status, 200);
    assert_eq!(reply.reply.text(), "home");
    let seen = home.next_seen().await;
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["via"], "2 data-embassy-gateway");

    let h1 = client_config(&ca, &[b"http/1.1"], None);
    let reply = tls_get(h1, gw.addr, "www.ariregister.example", "/x").await.unwrap();
    assert_eq!(reply.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.version, Version::HTTP_11);
    assert_eq!(reply.peer_cert, der(&biz));
    assert_eq!(reply.reply.status, 200);
}

#[tokio::test]
async fn only_tls_12_and_13_are_spoken() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(&["rahvastik.example"]);
    let dir = PemDir::new();
    let files = dir.leaf("pop", &leaf);
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&tls_config(home.addr, &[(&files, &["rahvastik.example"])], "")).await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(ca.roots())
                .with_no_client_auth();
        let tls = tls_connect(Arc::new(config), gw.addr, "rahvastik.example").await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
    }
}

#[tokio::test]
async fn client_certificates_are_demanded_when_the_listener_requires_them() {
    let ca = Ca::new("test CA");
    let clients = Ca::new("citizen card CA");
    let strangers = Ca::new("some other CA");
    let dir = PemDir::new();
    let files = dir.leaf("pop", &ca.leaf(&["rahvastik.example"]));
    let client_ca = dir.write("clients.pem", &clients.pem());
    let home = Backend::named("home").await;
    let extra = format!("client_ca = \"{client_ca}\"\nrequire_client_cert = true");
    let gw = TestGateway::start(&tls_config(home.addr, &[(&files, &["rahvastik.example"])], &extra)).await;
    let alpn: &[&[u8]] = &[b"http/1.1"];

    let card = clients.leaf(&["citizen.example"]);
    let ok = tls_get(client_config(&ca, alpn, Some(&card)), gw.addr, "rahvastik.example", "/").await.unwrap();
    assert_eq!(ok.reply.status, 200);

    // TLS 1.3: the client finishes first, so the refusal arrives as an alert
    // on the first read; either way no response comes back.
    let none = tls_get(client_config(&ca, alpn, None), gw.addr, "rahvastik.example", "/").await;
    assert!(none.is_err(), "a client without a certificate was served");
    let forged = strangers.leaf(&["citizen.example"]);
    let wrong = tls_get(client_config(&ca, alpn, Some(&forged)), gw.addr, "rahvastik.example", "/").await;
    assert!(wrong.is_err(), "a certificate from an unknown CA was accepted");
}

#[test]
fn unreadable_or_mismatched_pem_files_are_named_by_key_in_gateway_check() {
    let ca = Ca::new("test CA");
    let (a, b) = (ca.leaf(&["a.example"]), ca.leaf(&["b.example"]));
    let dir = PemDir::new();
    let cert = dir.write("a.crt", &a.cert_pem);
    let other_key = dir.write("b.key", &b.key_pem);
    let missing = dir.path("missing.key").display().to_string();
    let not_pem = dir.write("junk.pem", "this is not PEM\n");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[server.tls]
certificates = [
  {{ cert = "{cert}", key = "{missing}" }},
  {{ cert = "{cert}", key = "{other_key}", server_names = ["b.example"] }},
  {{ cert = "{not_pem}", key = "{other_key}", server_names = ["c.example"] }},
]
[registries.population]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["127.0.0.1:1"]
"#
    );
    // One certificate per run: loading stops at the first unusable file.
    for (i, entry) in config.lines().filter(|l| l.trim_start().starts_with("{ cert")).enumerate() {
        let only_one = config
            .lines()
            .filter(|l| !l.trim_start().starts_with("{ cert") || *l == entry)
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path(&format!("gateway-{i}.toml"));
        std::fs::write(&path, only_one).unwrap();
        let (code, _, stderr) = check(&path);
        assert_eq!(code, 1, "{stderr}");
        let expected = match i {
            0 => format!("server.tls.certificates[0].key: cannot read {missing}"),
            1 => format!("server.tls.certificates[0]: the private key in {other_key} does not belong to the certificate in {cert}"),
            _ => format!("server.tls.certificates[0].cert: {not_pem} holds no certificate in PEM form"),
        };
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn a_bad_certificate_on_reload_leaves_the_old_one_serving() {
    let ca = Ca::new("test CA");
    let old = ca.leaf(&["rahvastik.example"]);
    let dir = PemDir::new();
    let files = dir.leaf("pop", &old);
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&tls_config(
        home.addr,
        &[(&files, &["rahvastik.example"])],
        "reload_check = \"off\"",
    ))
    .await;
    let tls = gw.tls.clone().unwrap();
    dir.write("pop.crt", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.starts_with("server.tls.certificates[0].cert:"), "{err}");
    assert_eq!(tls.subscribe().borrow().loaded, 0);
    let reply =
        tls_get(client_config(&ca, &[b"http/1.1"], None), gw.addr, "rahvastik.example", "/").await.unwrap();
    assert_eq!(reply.peer_cert, der(&old));
    assert_eq!(reply.reply.status, 200);
}

#[tokio::test]
async fn certificates_reload_under_load_without_failing_a_request() {
    let ca = Ca::new("test CA");
    let (old, new) = (ca.leaf(&["rahvastik.example"]), ca.leaf(&["rahvastik.example"]));
    let dir = PemDir::new();
    let files = dir.leaf("pop", &old);
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&tls_config(
        home.addr,
        &[(&files, &["rahvastik.example"])],
        "reload_check = \"20ms\"",
    ))
    .await;
    let mut reloads = gw.tls.as_ref().unwrap().subscribe();
    let config = client_config(&ca, &[b"h2", b"http/1.1"], None);

    // Four clients, each making fresh TLS connections until told to stop
    // (at most 400 requests between them).
    let stop = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (config, stop, done, addr) = (config.clone(), stop.clone(), done.clone(), gw.addr);
        clients.push(tokio::spawn(async move {
            let mut certs: Vec<Vec<u8>> = Vec::new();
            for _ in 0..100 {
                let get = tls_get(config.clone(), addr, "rahvastik.example", "/people");
                let reply = tokio::select! {
                    r = get => r.expect("a request failed during reload"),
                    () = stop.notified() => break,
                };
                assert_eq!(reply.reply.status, 200);
                done.fetch_add(1, Ordering::SeqCst);
                certs.push(reply.peer_cert);
            }
            certs
        }));
    }

    // Replace key then certificate, each renamed into place: a poll between
    // the two sees a mismatched pair, refuses it and keeps serving the old.
    dir.write("pop.key", &new.key_pem);
    dir.write("pop.crt", &new.cert_pem);
    tokio::time::timeout(Duration::from_secs(20), reloads.wait_for(|s| s.loaded >= 1))
        .await
        .expect("no reload within 20s")
        .unwrap();
    // A full handshake: a resumed session would report the certificate it
    // was first made with (the load clients keep resuming old ones).
    let mut full = (*config).clone();
    full.resumption = rustls::client::Resumption::disabled();
    let fresh = tls_get(Arc::new(full), gw.addr, "rahvastik.example", "/").await.unwrap();
    assert_eq!(fresh.peer_cert, der(&new));
    stop.notify_waiters();
    let mut seen_old = false;
    for c in clients {
        let certs = c.await.unwrap();
        seen_old |= certs.iter().any(|c| *c == der(&old));
        assert!(certs.iter().all(|c| *c == der(&old) || *c == der(&new)));
    }
    assert!(seen_old);
    assert!(done.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_after_the_handshake_timeout() {
    let ca = Ca::new("test CA");
    let dir = PemDir::new();
    let files = dir.leaf("pop", &ca.leaf(&["rahvastik.example"]));
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&tls_config(
        home.addr,
        &[(&files, &["rahvastik.example"])],
        "handshake_timeout = \"200ms\"",
    ))
    .await;
    // Connect and send nothing: the gateway must hang up by itself.
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut tcp, &mut buf))
        .await
        .expect("the gateway kept a silent TLS client for 10s");
    assert!(matches!(n, Ok(0) | Err(_)));
}
