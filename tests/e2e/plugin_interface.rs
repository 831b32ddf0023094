//! The plugin interface outlives a product release: the host checks the interface version a
//! plugin was built against (stask-plugin-api's own version), never the plugin's or the
//! product's; a plugin of another interface line is refused with both versions. And how an
//! `abi_stable` prefix-type root module may grow, measured with real libraries.

use serde_json::{json, Value};
use stask_plugin_api::INTERFACE_VERSION;
use stask_tests::{library, prefix_growth_builds, Daemon, Home, PrefixGrowthBuild};
use std::process::Command;

/// The `plugin_files[]` entry of `file` in `GET /stask/workers`.
fn plugin_file(d: &Daemon, file: &str) -> Value {
    let r = d.get("/stask/workers");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["plugin_files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file"] == file))
        .unwrap_or_else(|| panic!("no plugin_files entry for {file}: {}", r.body))
        .clone()
}

#[test]
fn a_plugin_whose_version_is_not_the_products_loads_and_runs() {
    let home = Home::with_workers(&[]);
    home.install_file(&library("stask_fixture_own_version"), "own_version.so");
    let d = home.serve();

    let product = d.get("/stask/version").body["version"].clone();
    assert_ne!(
        product, "9.9.9",
        "the fixture's version must differ from the product's"
    );
    let entry = plugin_file(&d, "own_version.so");
    assert_eq!(entry["state"], "loaded", "{entry}");
    assert_eq!(entry["identifier"], "own_version", "{entry}");
    let worker = d.get("/stask/workers/own_version");
    assert_eq!(worker.status, 200, "{:?}", worker.body);
    assert!(
        worker.body.to_string().contains("9.9.9"),
        "the worker keeps its own version: {}",
        worker.body
    );

    let id = d.create("own_version", "echo", json!({}));
    let done = d.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], INTERFACE_VERSION, "{done}");
}

#[test]
fn a_plugin_of_another_interface_line_is_refused_with_both_versions() {
    let home = Home::with_workers(&["demo"]);
    home.install_file(
        &library("stask_fixture_version_mismatch"),
        "version_mismatch.so",
    );
    let d = home.serve();

    let entry = plugin_file(&d, "version_mismatch.so");
    assert_eq!(entry["state"], "error", "{entry}");
    let reason = entry["error"].as_str().unwrap_or_default();
    assert_eq!(
        reason,
        format!(
            "incompatible plugin interface: plugin built with stask-plugin-api 0.2.0, host needs {INTERFACE_VERSION}; rebuild the plugin"
        ),
        "{entry}"
    );
    assert_eq!(plugin_file(&d, "demo.so")["state"], "loaded");
}

/// What `host` prints after loading `library` (see the fixture's `growth_host`).
fn load(host: &PrefixGrowthBuild, library: &PrefixGrowthBuild) -> Vec<String> {
    let out = Command::new(&host.host)
        .arg(&library.library)
        .output()
        .expect("running growth_host");
    assert!(
        out.status.success(),
        "growth_host {} on {}: {out:?}",
        host.variant,
        library.variant
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(str::to_owned);
    assert_eq!(
        lines.next().as_deref(),
        Some(&*format!("host={}", host.variant))
    );
    lines.collect()
}

/// Every build's host against every build's library. The rule it shows (written down in
/// stask-plugin-api's `interface` docs): a root module checked by `abi_stable` may have
/// fields the host does not know (they are ignored), but never lack a field the host knows,
/// not even one after the prefix marked `missing_field(option)`; and moving the end of the
/// prefix breaks both directions.
#[test]
fn a_prefix_root_module_loads_in_older_hosts_but_never_in_hosts_with_more_fields() {
    let builds = prefix_growth_builds();
    let build = |variant: &str| {
        builds
            .iter()
            .find(|b| b.variant == variant)
            .expect("built variant")
    };
    let loaded = |second: Option<&str>| {
        let mut lines = vec!["loaded".to_owned(), "first=1".to_owned()];
        lines.extend(second.map(|s| format!("second={s}")));
        lines
    };
    let refused = |error: &str| vec![format!("refused: Error:{error}")];
    let expected = [
        // Same layout on both sides.
        ("base", "base", loaded(None)),
        ("grown", "grown", loaded(Some("2"))),
        ("grown_prefix", "grown_prefix", loaded(Some("2"))),
        // An older host loads a library with a field added after the prefix.
        ("base", "grown", loaded(None)),
        // A host with that field refuses the library without it: `second` is not read as None.
        ("grown", "base", refused("too many fields")),
        // A field added to the prefix: refused in both directions.
        (
            "base",
            "grown_prefix",
            refused("prefix-types have a different prefix"),
        ),
        ("grown_prefix", "base", refused("incompatible type size")),
        (
            "grown",
            "grown_prefix",
            refused("prefix-types have a different prefix"),
        ),
        ("grown_prefix", "grown", refused("incompatible type size")),
    ];
    for (host, lib, want) in expected {
        assert_eq!(
            load(build(host), build(lib)),
            want,
            "host {host}, library {lib}"
        );
    }
}
