use crate::fixtures::{get, Backend, TestGateway};

#[tokio::test]
async fn routes_by_longest_path_prefix() {
    let pop = Backend::named("population").await;
    let tax = Backend::named("tax").await;
    let archive = Backend::named("tax-archive").await;
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{}"]
[registries.tax]
routes = [{{ prefix = "/tax" }}]
sites.home.backends = ["{}"]
[registries.tax-archive]
routes = [{{ prefix = "/tax/archive/" }}]
sites.home.backends = ["{}"]
"#,
        pop.addr, tax.addr, archive.addr
    ))
    .await;

    assert_eq!(get(&gw.url("/population/people/1")).await.text(), "population");
    assert_eq!(get(&gw.url("/tax/returns/2025")).await.text(), "tax");
    assert_eq!(get(&gw.url("/tax/archive/2019")).await.text(), "tax-archive");
    assert_eq!(get(&gw.url("/tax")).await.text(), "tax");
    // Whole segments only: /taxes is not under /tax.
    assert_eq!(get(&gw.url("/taxes")).await.status, 404);
}

#[tokio::test]
async fn routes_by_host_before_host_less_routes_of_the_same_prefix() {
    let gazette = Backend::named("gazette").await;
    let fallback = Backend::named("fallback").await;
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.gazette]
routes = [{{ host = "Gazette.Example", prefix = "/" }}]
sites.home.backends = ["{}"]
[registries.portal]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{}"]
"#,
        gazette.addr, fallback.addr
    ))
    .await;

    let client = crate::fixtures::client::h1_client();
    let req = |host: &str| {
        http::Request::get(gw.url("/acts/1"))
            .header("host", host)
            .body(crate::fixtures::client::empty())
            .unwrap()
    };
    let by_host = crate::fixtures::send(&client, req("gazette.example:8080")).await;
    assert_eq!(by_host.text(), "gazette");
    let other = crate::fixtures::send(&client, req("www.example")).await;
    assert_eq!(other.text(), "fallback");
}

#[tokio::test]
async fn strips_or_rewrites_the_prefix_and_keeps_the_query() {
    let mut stripped = Backend::named("stripped").await;
    let mut rewritten = Backend::named("rewritten").await;
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/", strip_prefix = true }}]
sites.home.backends = ["{}"]
[registries.gazette]
routes = [{{ prefix = "/gazette", rewrite_prefix = "/api/v1/acts/" }}]
sites.home.backends = ["{}"]
"#,
        stripped.addr, rewritten.addr
    ))
    .await;

    get(&gw.url("/population/people/38001085718?fields=name")).await;
    assert_eq!(stripped.next_seen().await.uri.to_string(), "/people/38001085718?fields=name");
    get(&gw.url("/gazette/112032026004")).await;
    assert_eq!(rewritten.next_seen().await.uri.to_string(), "/api/v1/acts/112032026004");
}

#[tokio::test]
async fn spreads_requests_over_a_sites_backends_round_robin() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{}", "{}"]
"#,
        a.addr, b.addr
    ))
    .await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get(&gw.url("/x")).await.text());
    }
    assert_eq!(answers, ["a", "b", "a", "b"]);
}
