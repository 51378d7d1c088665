//! TLS to sites: mTLS to an embassy, CA trust, server name override,
//! public-key pinning, HTTP/2 by ALPN.

use crate::fixtures::tls::{Ca, PemDir, TlsBackend};
use crate::fixtures::{get, Reply, TestGateway};

/// One registry whose home site is `backend`, reached with `tls` (the
/// inside of `[registries.population.sites.home.tls]`).
fn config(backend: std::net::SocketAddr, tls: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[registries.population]
routes = [{{ prefix = "/" }}]

[registries.population.sites.home]
backends = ["{backend}"]

[registries.population.sites.home.tls]
{tls}
"#
    )
}

/// The embassy's PKI: a CA for its server certificate and one for the
/// gateway's client certificate, written out for the config.
struct Embassy {
    dir: PemDir,
    server_ca: Ca,
    client_ca: Ca,
}

impl Embassy {
    fn new() -> Embassy {
        Embassy {
            dir: PemDir::new(),
            server_ca: Ca::new("embassy server CA"),
            client_ca: Ca::new("embassy client CA"),
        }
    }

    /// `ca`, `client_cert`, `client_key` lines for a gateway identity
    /// issued by `issuer`.
    fn tls_lines(&self, issuer: &Ca) -> String {
        let ca = self.dir.write("server-ca.pem", &self.server_ca.pem());
        let (cert, key) = self.dir.leaf("gateway", &issuer.leaf(&["gateway.example"]));
        format!("ca = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"")
    }
}

fn assert_tls_error(reply: &Reply, kind: &str) {
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.proxy_status_error(), kind, "{}", reply.text());
}

#[tokio::test]
async fn mtls_to_an_embassy_succeeds_with_the_configured_client_certificate() {
    let e = Embassy::new();
    let site = TlsBackend::start("embassy-lu", &e.server_ca.leaf(&["127.0.0.1"]), Some(&e.client_ca)).await;
    let gw = TestGateway::start(&config(site.addr, &e.tls_lines(&e.client_ca))).await;
    let reply = get(&gw.url("/people/1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "embassy-lu");
    assert_eq!(reply.header("x-version"), "HTTP/1.1");
    assert_eq!(site.served(), 1);
}

#[tokio::test]
async fn an_embassy_refuses_a_client_certificate_from_another_ca_and_nothing_is_served() {
    let e = Embassy::new();
    let site = TlsBackend::start("embassy-lu", &e.server_ca.leaf(&["127.0.0.1"]), Some(&e.client_ca)).await;
    let impostor = Ca::new("not the embassy's CA");
    let gw = TestGateway::start(&config(site.addr, &e.tls_lines(&impostor))).await;
    let reply = get(&gw.url("/people/1")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(site.served(), 0);
}

#[tokio::test]
async fn a_site_certificate_from_an_unknown_ca_is_a_tls_certificate_error() {
    let e = Embassy::new();
    let rogue = Ca::new("rogue CA");
    let site = TlsBackend::start("rogue", &rogue.leaf(&["127.0.0.1"]), None).await;
    let gw = TestGateway::start(&config(site.addr, &e.tls_lines(&e.client_ca))).await;
    assert_tls_error(&get(&gw.url("/")).await, "tls_certificate_error");
    assert_eq!(site.served(), 0);
}

#[tokio::test]
async fn the_server_name_override_is_what_the_site_certificate_is_checked_against() {
    let e = Embassy::new();
    let site = TlsBackend::start("embassy-lu", &e.server_ca.leaf(&["lu.embassy.example"]), None).await;
    let ca = e.dir.write("server-ca.pem", &e.server_ca.pem());
    let without = TestGateway::start(&config(site.addr, &format!("ca = \"{ca}\""))).await;
    assert_tls_error(&get(&without.url("/")).await, "tls_certificate_error");

    let with = TestGateway::start(&config(
        site.addr,
        &format!("ca = \"{ca}\"\nserver_name = \"lu.embassy.example\""),
    ))
    .await;
    assert_eq!(get(&with.url("/")).await.status, 200);
}

#[tokio::test]
async fn a_pinned_key_is_accepted_and_any_other_key_refused() {
    let e = Embassy::new();
    let leaf = e.server_ca.leaf(&["127.0.0.1"]);
    let site = TlsBackend::start("embassy-lu", &leaf, None).await;
    let ca = e.dir.write("server-ca.pem", &e.server_ca.pem());
    let other_pin = e.server_ca.leaf(&["127.0.0.1"]).pin;

    let pinned = TestGateway::start(&config(
        site.addr,
        &format!("ca = \"{ca}\"\npin_sha256 = [\"{other_pin}\", \"{}\"]", leaf.pin),
    ))
    .await;
    assert_eq!(get(&pinned.url("/")).await.status, 200);

    let wrong =
        TestGateway::start(&config(site.addr, &format!("ca = \"{ca}\"\npin_sha256 = [\"{other_pin}\"]")))
            .await;
    let reply = get(&wrong.url("/")).await;
    assert_tls_error(&reply, "tls_certificate_error");
    assert!(reply.text().contains("pin_sha256"), "{}", reply.text());
    assert_eq!(site.served(), 1);
}

#[tokio::test]
async fn http2_to_a_site_is_used_when_configured() {
    let e = Embassy::new();
    let site = TlsBackend::start("embassy-lu", &e.server_ca.leaf(&["127.0.0.1"]), None).await;
    let ca = e.dir.write("server-ca.pem", &e.server_ca.pem());
    let gw = TestGateway::start(&config(site.addr, &format!("ca = \"{ca}\"\nhttp2 = true"))).await;
    let reply = get(&gw.url("/people/1")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-version"), "HTTP/2.0");
}
