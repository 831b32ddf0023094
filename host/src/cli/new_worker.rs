//! `stask new-worker NAME`: scaffolds a worker crate outside this repository.
//!
//! The crate is the README's worker with unit tests on `stask_plugin_api::testing::TestHost`,
//! its own workspace root (so it builds wherever it lies), and a dependency on the interface
//! crate from where the author keeps it (`--api`). The templates live in
//! `host/templates/new-worker/`, compiled into the binary.

use super::{CliError, CliResult};
use clap::Args;
use std::path::{Path, PathBuf};

/// Arguments of `stask new-worker`.
#[derive(Debug, Args)]
pub struct NewWorkerArgs {
    /// The worker's identifier (1-64 lowercase letters, digits, '_' or '-'); also names the
    /// crate (`stask-worker-NAME`) and its library (`libstask_worker_NAME.so`).
    pub name: String,
    /// Folder to create the crate in (default: ./NAME). It must not exist or be empty.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Where the interface crate comes from: `path:DIR`, `git:URL` (optionally `#REV`) or
    /// `version:REQ` (a published crate). Default: this binary's source tree when it is still
    /// there, else `version:` of this host's interface line.
    #[arg(long, value_parser = ApiSource::parse)]
    pub api: Option<ApiSource>,
}

/// Where the generated crate takes `stask-plugin-api` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSource {
    /// A local checkout of the crate.
    Path(PathBuf),
    /// A git repository holding the crate, at a revision (branch, tag or commit) or its default.
    Git {
        /// Repository URL.
        url: String,
        /// Revision, if any.
        rev: Option<String>,
    },
    /// A published version requirement, e.g. `0.1`.
    Version(String),
}

impl ApiSource {
    /// Parses `--api`.
    pub fn parse(raw: &str) -> Result<ApiSource, String> {
        let bad = || format!("--api must be path:DIR, git:URL[#REV] or version:REQ, got '{raw}'");
        let (kind, rest) = raw.split_once(':').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        match kind {
            "path" => Ok(ApiSource::Path(PathBuf::from(rest))),
            "git" => Ok(match rest.split_once('#') {
                Some((url, rev)) if !url.is_empty() && !rev.is_empty() => ApiSource::Git {
                    url: url.to_owned(),
                    rev: Some(rev.to_owned()),
                },
                Some(_) => return Err(bad()),
                None => ApiSource::Git {
                    url: rest.to_owned(),
                    rev: None,
                },
            }),
            "version" => Ok(ApiSource::Version(rest.to_owned())),
            _ => Err(bad()),
        }
    }

    /// The default: the interface crate of the source tree this binary was built from, when
    /// it is still there (a developer's checkout, `cargo install --path host`), else the
    /// published crate of this host's interface line.
    fn default_for_this_host() -> ApiSource {
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
        match tree.join("Cargo.toml").is_file() {
            true => ApiSource::Path(tree.canonicalize().unwrap_or(tree)),
            false => ApiSource::Version(interface_line()),
        }
    }

    /// The dependency's value in `Cargo.toml` (strings quoted by the TOML library).
    fn dependency(&self) -> String {
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        match self {
            ApiSource::Path(dir) => format!("{{ path = {} }}", quoted(&dir.to_string_lossy())),
            ApiSource::Git { url, rev: None } => format!("{{ git = {} }}", quoted(url)),
            ApiSource::Git {
                url,
                rev: Some(rev),
            } => {
                format!("{{ git = {}, rev = {} }}", quoted(url), quoted(rev))
            }
            ApiSource::Version(req) => quoted(req),
        }
    }

    /// For people: where the crate comes from.
    fn describe(&self) -> String {
        match self {
            ApiSource::Path(dir) => format!("the folder {}", dir.display()),
            ApiSource::Git { url, rev } => match rev {
                Some(rev) => format!("the git repository {url} at {rev}"),
                None => format!("the git repository {url}"),
            },
            ApiSource::Version(req) => format!("the published crate, version {req}"),
        }
    }
}

/// `MAJOR.MINOR` of this host's interface while 0.x (the line it accepts), `MAJOR` from 1.0 on.
fn interface_line() -> String {
    let version = crate::plugins::plugin_api_version();
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}"),
        (Some(major), _) => major.to_owned(),
        _ => version.to_owned(),
    }
}

/// The names a worker identifier gives the generated code.
#[derive(Debug, PartialEq, Eq)]
struct Names {
    identifier: String,
    crate_name: String,
    lib_name: String,
    type_name: String,
    title: String,
}

impl Names {
    fn of(identifier: &str) -> Result<Names, CliError> {
        crate::plugins::loader::validate_identifier(identifier).map_err(|e| CliError::new(5, e))?;
        let words: Vec<&str> = identifier
            .split(['_', '-'])
            .filter(|w| !w.is_empty())
            .collect();
        let capitalized = |w: &&str| {
            let mut chars = w.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        };
        let mut type_name: String = words.iter().map(capitalized).collect();
        // A Rust type name cannot start with a digit (`9lives`), nor be empty (`_`).
        if !type_name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            type_name.insert_str(0, "Worker");
        }
        let title = match words.is_empty() {
            true => identifier.to_owned(),
            false => words.iter().map(capitalized).collect::<Vec<_>>().join(" "),
        };
        Ok(Names {
            identifier: identifier.to_owned(),
            crate_name: identifier.replace('_', "-"),
            lib_name: identifier.replace('-', "_"),
            type_name,
            title,
        })
    }
}

/// Fills `{{key}}` placeholders.
fn render(template: &str, names: &Names, api: &ApiSource) -> String {
    template
        .replace("{{identifier}}", &names.identifier)
        .replace("{{crate_name}}", &names.crate_name)
        .replace("{{lib_name}}", &names.lib_name)
        .replace("{{type_name}}", &names.type_name)
        .replace("{{title}}", &names.title)
        .replace("{{api_dependency}}", &api.dependency())
        .replace("{{api_source}}", &api.describe())
}

/// The files of the crate, by path inside its folder.
const FILES: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        include_str!("../../templates/new-worker/Cargo.toml.in"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/new-worker/lib.rs.in"),
    ),
    (
        "README.md",
        include_str!("../../templates/new-worker/README.md.in"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/new-worker/gitignore.in"),
    ),
];

/// Writes the crate; exit codes: 5 an invalid name, 4 a folder that is not empty, 1 a write
/// that failed.
pub fn new_worker(args: NewWorkerArgs) -> CliResult {
    let names = Names::of(&args.name)?;
    let dir = args
        .path
        .unwrap_or_else(|| PathBuf::from(&names.identifier));
    let api = args.api.unwrap_or_else(ApiSource::default_for_this_host);
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || (dir.exists() && !dir.is_dir()) {
        return Err(CliError::new(
            4,
            format!(
                "{} already exists and is not an empty folder",
                dir.display()
            ),
        ));
    }
    for (path, template) in FILES {
        let target = dir.join(path);
        let written = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&target, render(template, &names, &api)));
        written.map_err(|e| CliError::new(1, format!("cannot write {}: {e}", target.display())))?;
    }
    outln!(
        "created the worker '{}' in {} (interface crate: {})",
        names.identifier,
        dir.display(),
        api.describe()
    );
    outln!(
        "  cd {} && cargo test && cargo build --release",
        dir.display()
    );
    outln!(
        "  then copy target/release/libstask_worker_{}.so into the daemon's plugins.d/",
        names.lib_name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_identifier() {
        let n = Names::of("mail_digest").unwrap();
        assert_eq!(
            n,
            Names {
                identifier: "mail_digest".into(),
                crate_name: "mail-digest".into(),
                lib_name: "mail_digest".into(),
                type_name: "MailDigest".into(),
                title: "Mail Digest".into(),
            }
        );
        assert_eq!(Names::of("9-lives").unwrap().type_name, "Worker9Lives");
        assert_eq!(Names::of("_").unwrap().type_name, "Worker");
        let e = Names::of("Bad Name").unwrap_err();
        assert_eq!(e.code, 5);
        assert!(
            e.message.contains("invalid worker identifier"),
            "{}",
            e.message
        );
    }

    #[test]
    fn api_sources_parse_and_render_as_toml() {
        let p = ApiSource::parse("path:/src/it's here/plugin-api").unwrap();
        assert_eq!(p.dependency(), r#"{ path = "/src/it's here/plugin-api" }"#);
        let g = ApiSource::parse("git:https://git.example/stask.git#v0.1.0").unwrap();
        assert_eq!(
            g.dependency(),
            r#"{ git = "https://git.example/stask.git", rev = "v0.1.0" }"#
        );
        assert_eq!(
            ApiSource::parse("git:file:///srv/stask")
                .unwrap()
                .dependency(),
            r#"{ git = "file:///srv/stask" }"#
        );
        assert_eq!(
            ApiSource::parse("version:0.1").unwrap().dependency(),
            r#""0.1""#
        );
        for bad in ["", "path:", "svn:x", "git:#rev", "git:url#", "0.1"] {
            let e = ApiSource::parse(bad).unwrap_err();
            assert!(e.starts_with("--api must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_interface_line_is_major_minor_while_0x() {
        let (line, version) = (interface_line(), crate::plugins::plugin_api_version());
        assert!(version.starts_with(&line), "{line} of {version}");
        if version.starts_with("0.") {
            assert_eq!(line.matches('.').count(), 1, "{line}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let names = Names::of("greeter").unwrap();
        let api = ApiSource::Version("0.1".into());
        for (path, template) in FILES {
            let text = render(template, &names, &api);
            assert!(!text.contains("{{"), "{path} keeps a placeholder:\n{text}");
        }
    }

    #[test]
    fn a_folder_that_is_not_empty_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let e = new_worker(NewWorkerArgs {
            name: "greeter".into(),
            path: Some(dir.path().to_owned()),
            api: Some(ApiSource::Version("0.1".into())),
        })
        .unwrap_err();
        assert_eq!(e.code, 4, "{}", e.message);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
