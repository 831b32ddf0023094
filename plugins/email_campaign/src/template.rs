//! `{{placeholder}}` rendering and template lookup.

use stask_plugin_api::TaskError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Replaces every `{{key}}` (spaces inside the braces allowed) with `fields[key]`.
///
/// Unknown placeholders are kept verbatim so a typo shows up in the sent text instead of
/// silently vanishing. Rendering is a single pass: a value that itself contains `{{...}}` is
/// not expanded again, so recipient data cannot pull in other recipients' fields.
pub fn render(template: &str, fields: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let inner = &rest[start + 2..];
        let Some(end) = inner.find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        match fields.get(inner[..end].trim()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &inner[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The file of the named template: `{data_dir}/templates/{name}.txt`.
///
/// The name comes from task data, so anything that could leave the templates folder (path
/// separators, `..`) is refused rather than cleaned up.
pub fn template_path(data_dir: &Path, name: &str) -> Result<PathBuf, TaskError> {
    if name.trim().is_empty() || name.contains(['/', '\\', '\0']) || name.contains("..") {
        return Err(TaskError::permanent(format!(
            "template {name:?} is not a valid template name (no paths, no ..)"
        )));
    }
    Ok(data_dir.join("templates").join(format!("{name}.txt")))
}

/// Reads a named template; a missing one is a permanent error naming the expected file.
pub fn load(data_dir: &Path, name: &str) -> Result<String, TaskError> {
    let path = template_path(data_dir, name)?;
    std::fs::read_to_string(&path).map_err(|e| {
        TaskError::permanent(format!(
            "template {name:?} cannot be read from {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_known_and_keeps_unknown_placeholders() {
        let f = fields(&[("name", "Ada"), ("code", "X1")]);
        assert_eq!(
            render("Hi {{name}}, use {{ code }} before {{date}}.", &f),
            "Hi Ada, use X1 before {{date}}."
        );
        assert_eq!(render("no placeholders", &f), "no placeholders");
        assert_eq!(render("{{name}}{{name}}", &f), "AdaAda");
    }

    #[test]
    fn rendering_is_single_pass_and_tolerates_broken_braces() {
        let f = fields(&[("name", "{{code}}"), ("code", "secret")]);
        assert_eq!(render("{{name}}", &f), "{{code}}");
        assert_eq!(render("open {{name", &f), "open {{name");
        assert_eq!(render("}} {{", &f), "}} {{");
        assert_eq!(render("ünï {{code}} çödé", &f), "ünï secret çödé");
    }

    #[test]
    fn template_names_cannot_escape_the_folder() {
        let dir = Path::new("/data");
        assert_eq!(
            template_path(dir, "welcome").unwrap(),
            PathBuf::from("/data/templates/welcome.txt")
        );
        for bad in ["", " ", "../secret", "a/b", "a\\b", "..", "x..y"] {
            assert!(template_path(dir, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn missing_template_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(dir.path(), "nope").unwrap_err();
        assert!(error.message().contains("nope.txt"), "{error}");
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/hi.txt"), "Hi {{name}}").unwrap();
        assert_eq!(load(dir.path(), "hi").unwrap(), "Hi {{name}}");
    }
}
