//! The plugin interface's version and the rule by which a host accepts a plugin.
//!
//! # The version
//!
//! [`INTERFACE_VERSION`] is this crate's own version (`plugin-api/Cargo.toml`), independent of
//! the product's: releasing sTask 0.2 leaves it alone, so the plugins built for sTask 0.1 keep
//! loading. A plugin records the interface version it was built against in its root module
//! (`abi_stable`'s `VERSION_STRINGS`), and `abi_stable` records it again, as the package
//! version, in the layout of every type of this crate the root module reaches.
//!
//! # What a host accepts
//!
//! Versions fall into *lines*: `x.*.*` for `x >= 1`, and `0.y.*` while the major version is 0
//! (Cargo's semver rule). A host accepts a plugin whose interface version is on the host's own
//! line, older or newer within it, and refuses any other with both versions in the message
//! ([`is_compatible`]). `abi_stable`'s layout check applies the same rule to the package
//! versions it compares, so the two checks agree; its own root-module version check is looser
//! (a 0.1 host would accept a 0.2 plugin), which is why the host checks this rule first.
//!
//! # What may change within a line (a minor bump, or a patch bump while 0.x)
//!
//! - New fields in the JSON documents of [`crate::protocol`], as long as the side reading them
//!   has a default for them (an older peer never sends them) and ignores fields it does not
//!   know (a newer peer does send them).
//! - New [`crate::abi::HostContext::call`] methods ("verbs"): an older host answers an unknown
//!   one with `Err`, so a plugin using a new verb must cope with that answer.
//!
//! # How the root module may grow (measured, not assumed)
//!
//! [`crate::abi::WorkerModule`] is an `abi_stable` prefix type, and `abi_stable` checks the
//! host's layout of it against the plugin's when the plugin loads. The test
//! `a_prefix_root_module_loads_in_older_hosts_but_never_in_hosts_with_more_fields`
//! (tests/e2e/plugin_interface.rs, fixture tests/fixtures/prefix_growth) loads three builds of
//! a tiny root module in each other's hosts and shows:
//! - a plugin whose root module has a field *after* `last_prefix_field` that the host does not
//!   know loads, and the host does not see the field;
//! - a host whose root module has such a field refuses every plugin without it ("too many
//!   fields"), even with `missing_field(option)`: the root module check never lets the host
//!   read a missing field as `None`;
//! - a field added *inside* the prefix (moving `last_prefix_field`) is refused both ways.
//!
//! So a host with a new root-module field would refuse every plugin built before it: adding a
//! field to the root module needs a new line. `HostContext`'s vtable is a prefix type too and
//! is treated the same way (not measured separately): a new method needs a new line. Grow
//! through JSON and `call` verbs instead.
//!
//! # What needs a new line (a major bump, or a minor bump while 0.x)
//!
//! Anything that changes what an existing plugin or host relies on: a changed signature or
//! order of a root-module field or of a `HostContext` method, any new root-module field (in
//! the prefix or after it), a new `HostContext` method, a removed or renamed JSON field
//! or verb, or a changed meaning of a value (such as the [`crate::LogLevel`] numbers). Every
//! plugin must then be rebuilt; the host refuses the older ones with both versions in the
//! reason.

/// The version of the plugin interface this crate defines (its own crate version).
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A parsed `major.minor.patch` interface version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl InterfaceVersion {
    /// Parses `major.minor.patch` (a pre-release or build suffix on the patch is ignored, as
    /// `abi_stable` ignores it); `None` when the text is not such a version.
    pub fn parse(text: &str) -> Option<InterfaceVersion> {
        let mut parts = text.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch_text = parts.next()?;
        let digits = patch_text
            .find(|c: char| !c.is_ascii_digit())
            .map_or(patch_text, |end| &patch_text[..end]);
        let patch = digits.parse().ok()?;
        Some(InterfaceVersion {
            major,
            minor,
            patch,
        })
    }

    /// The line this version belongs to: `(major, 0)` from 1.0 on, `(0, minor)` before.
    fn line(self) -> (u64, u64) {
        if self.major == 0 {
            (0, self.minor)
        } else {
            (self.major, 0)
        }
    }
}

impl std::fmt::Display for InterfaceVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Whether a host built against interface `host` accepts a plugin built against `plugin`:
/// both on the same line (see the module docs).
pub fn is_compatible(host: InterfaceVersion, plugin: InterfaceVersion) -> bool {
    host.line() == plugin.line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> InterfaceVersion {
        InterfaceVersion::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn the_interface_version_is_a_version() {
        assert!(InterfaceVersion::parse(INTERFACE_VERSION).is_some());
    }

    #[test]
    fn parse_reads_three_numbers_and_ignores_a_suffix() {
        assert_eq!(
            InterfaceVersion::parse("1.22.333-rc.1"),
            Some(InterfaceVersion {
                major: 1,
                minor: 22,
                patch: 333
            })
        );
        for bad in ["", "1", "1.2", "a.b.c", "1.2.x"] {
            assert_eq!(InterfaceVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_host_accepts_older_and_newer_plugins_of_its_line_only() {
        let cases = [
            ("0.1.0", "0.1.0", true),
            ("0.1.0", "0.1.7", true),
            ("0.1.7", "0.1.0", true),
            ("0.1.0", "0.2.0", false),
            ("0.2.0", "0.1.0", false),
            ("0.1.0", "1.0.0", false),
            ("1.0.0", "1.4.2", true),
            ("1.4.2", "1.0.0", true),
            ("1.0.0", "2.0.0", false),
            ("2.0.0", "1.9.9", false),
        ];
        for (host, plugin, accepted) in cases {
            assert_eq!(
                is_compatible(v(host), v(plugin)),
                accepted,
                "host {host}, plugin {plugin}"
            );
        }
    }
}
