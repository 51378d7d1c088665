use gateway::config::from_toml;

/// Compiles `toml` and returns every error as `path: reason` lines.
fn errors_of(toml: &str) -> Vec<String> {
    match from_toml(toml) {
        Ok(_) => panic!("config was accepted:\n{toml}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const SERVER: &str = "[server]\nlisten = \"127.0.0.1:18080\"\n";

#[test]
fn an_out_of_range_port_names_the_backend_key() {
    let errors = errors_of(&format!(
        "{SERVER}[registries.population]\nroutes = [{{ prefix = \"/population/\" }}]\nsites.home.backends = [\"10.0.0.1:99999\"]\n"
    ));
    assert_eq!(
        errors,
        [
            r#"registries.population.sites.home.backends[0]: invalid address "10.0.0.1:99999": port out of range"#
        ]
    );
}

#[test]
fn an_unknown_key_is_named_with_its_path() {
    let errors = errors_of(&format!(
        "{SERVER}[registries.population]\nroutes = [{{ prefix = \"/p\" }}]\nsites.home.backends = [\"127.0.0.1:1\"]\nsites.home.weight = 3\n"
    ));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("registries.population.sites.home"), "{errors:?}");
    assert!(errors[0].contains("unknown field `weight`"), "{errors:?}");
    assert!(errors[0].contains("line 6"), "{errors:?}");
}

#[test]
fn a_missing_home_site_is_an_error() {
    let errors = errors_of(&format!(
        "{SERVER}[registries.tax]\nroutes = [{{ prefix = \"/tax\" }}]\nsites.embassy-lu.backends = [\"127.0.0.1:1\"]\n"
    ));
    assert_eq!(errors, ["registries.tax.sites: missing the `home` site: every registry needs one"]);
}

#[test]
fn duplicate_routes_name_both_places() {
    let errors = errors_of(&format!(
        "{SERVER}[registries.a]\nroutes = [{{ prefix = \"/tax/\" }}]\nsites.home.backends = [\"127.0.0.1:1\"]\n\
         [registries.b]\nroutes = [{{ prefix = \"/tax\" }}]\nsites.home.backends = [\"127.0.0.1:2\"]\n"
    ));
    assert_eq!(
        errors,
        [
            r#"registries.b.routes[0]: duplicate route: prefix "/tax" on any host is already taken by registries.a.routes[0]"#
        ]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors_of(
        r#"
[server]
listen = "localhost:80"
max_header_bytes = "12 parsecs"
trusted_proxies = ["10.0.0.0/33"]
[defaults]
connect_timeout = "soon"
[registries.population]
routes = [{ prefix = "population", strip_prefix = true, rewrite_prefix = "/x" }]
sites.home.backends = []
"#,
    );
    let joined = errors.join("\n");
    for key in [
        "server.listen:",
        "server.max_header_bytes:",
        "server.trusted_proxies[0]:",
        "defaults.connect_timeout:",
        "registries.population.routes[0].prefix:",
        "registries.population.sites.home.backends:",
    ] {
        assert!(joined.contains(key), "no error for {key} in:\n{joined}");
    }
}

#[test]
fn a_config_without_registries_is_refused() {
    assert_eq!(errors_of(SERVER), ["registries: no registry configured: the gateway would route nothing"]);
}

#[test]
fn a_toml_syntax_error_names_the_line() {
    let errors = errors_of("[server]\nlisten = \"127.0.0.1:1\"\n[registries.population\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("line 3"), "{errors:?}");
}
