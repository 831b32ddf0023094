//! The `send` action: validate the whole campaign first, then deliver recipient by recipient.
//!
//! Everything that would make every message wrong (no subject, missing template or attachment,
//! bad sender) is checked before the first delivery, so a failed task never leaves a
//! half-sent campaign behind for those reasons.

use crate::delivery::{Delivery, Target};
use crate::message::{self, FileAttachment};
use crate::template;
use lettre::message::Mailbox;
use serde_json::{json, Value};
use stask_plugin_api::{Context, Output, TaskError};
use std::path::{Path, PathBuf};

/// Sender used when neither the task nor the settings name one.
const DEFAULT_FROM: &str = "stask@localhost";
/// Recipient failures logged one by one; past this only the count grows.
const MAX_LOGGED_FAILURES: u64 = 20;

/// A validated campaign.
#[derive(Debug)]
struct Campaign {
    subject: String,
    body: String,
    /// Raw entries: each is parsed when its turn comes, so one bad entry fails only itself.
    recipients: Vec<Value>,
    attachments: Vec<FileAttachment>,
    from: Mailbox,
}

/// Folders the task data is resolved against.
struct Dirs<'a> {
    data: &'a Path,
    storage: &'a Path,
}

fn parse(data: &Value, settings: &Value, dirs: &Dirs<'_>) -> Result<Campaign, TaskError> {
    let text = |key: &str| -> Result<Option<&str>, TaskError> {
        match data.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(TaskError::permanent(format!(
                "{key} must be a string, got {other}"
            ))),
        }
    };
    let subject = text("subject")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| TaskError::permanent("subject is required"))?;
    let body = match (text("template")?, text("body")?) {
        (Some(name), None) => template::load(dirs.data, name)?,
        (None, Some(body)) => body.to_owned(),
        (Some(_), Some(_)) => {
            return Err(TaskError::permanent(
                "give either template (a template name) or body (inline text), not both",
            ))
        }
        (None, None) => {
            return Err(TaskError::permanent(
                "template (a template name) or body (inline text) is required",
            ))
        }
    };
    let recipients = match data.get("recipients") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        _ => {
            return Err(TaskError::permanent(
                "recipients must be a non-empty array of {email, name, ...} objects",
            ))
        }
    };
    let attachments = match data.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(paths)) => paths
            .iter()
            .map(|p| {
                let path = p.as_str().ok_or_else(|| {
                    TaskError::permanent(format!("attachments must be file paths, got {p}"))
                })?;
                FileAttachment::load(&resolve(Path::new(path), dirs.storage)?)
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(TaskError::permanent(format!(
                "attachments must be an array of file paths, got {other}"
            )))
        }
    };
    let from_setting = settings.get("from").and_then(Value::as_str);
    let from = [text("from")?, from_setting]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|f| !f.is_empty())
        .unwrap_or(DEFAULT_FROM);
    let from = from
        .parse()
        .map_err(|e| TaskError::permanent(format!("from {from:?} is not a valid sender: {e}")))?;
    Ok(Campaign {
        subject: subject.to_owned(),
        body,
        recipients,
        attachments,
        from,
    })
}

/// Relative attachment paths name files in the host's storage folder (where uploads land).
fn resolve(path: &Path, storage: &Path) -> Result<PathBuf, TaskError> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else if storage.as_os_str().is_empty() {
        Err(TaskError::permanent(format!(
            "attachment {} is relative but the host gave no storage folder",
            path.display()
        )))
    } else {
        Ok(storage.join(path))
    }
}

/// Runs the `send` action.
pub fn send(ctx: &Context<'_>, data: &Value) -> Result<Output, TaskError> {
    let dirs = Dirs {
        data: ctx.data_dir(),
        storage: ctx.storage_dir(),
    };
    let campaign = parse(data, ctx.settings(), &dirs)?;
    let delivery = Delivery::open(Target::from_settings(ctx.settings(), dirs.data)?)?;
    let total = campaign.recipients.len() as u64;
    ctx.log(&format!(
        "sending to {total} recipients via {}",
        delivery.kind()
    ));

    let (mut sent, mut failed) = (0u64, 0u64);
    for (i, entry) in campaign.recipients.iter().enumerate() {
        if ctx.is_cancelled() {
            ctx.log(&format!("cancelled after {sent} sent and {failed} failed"));
            return Err(TaskError::cancelled());
        }
        let outcome = message::parse_recipient(entry).and_then(|recipient| {
            let message = message::build(
                &campaign.from,
                &recipient,
                &campaign.subject,
                &campaign.body,
                &campaign.attachments,
            )?;
            delivery.send(&message)
        });
        match outcome {
            Ok(()) => sent += 1,
            Err(reason) => {
                failed += 1;
                if failed <= MAX_LOGGED_FAILURES {
                    ctx.warn(&format!("recipient {}: {reason}", i + 1));
                } else if failed == MAX_LOGGED_FAILURES + 1 {
                    ctx.warn("more recipients failed; only counting them from here on");
                }
            }
        }
        ctx.progress_items(
            i as u64 + 1,
            total,
            &format!("{sent} sent, {failed} failed"),
        );
    }

    ctx.log(&format!("campaign done: {sent} sent, {failed} failed"));
    Ok(Output::json(&json!({
        "sent": sent,
        "failed": failed,
        "transport": delivery.kind(),
        "outbox": delivery.outbox().map(|p| p.to_string_lossy()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(path: &Path) -> Dirs<'_> {
        Dirs {
            data: path,
            storage: path,
        }
    }

    #[test]
    fn inline_body_and_sender_fallbacks() {
        let here = Path::new("/nowhere");
        let data =
            json!({"subject": "Hi", "body": "Hello {{name}}", "recipients": [{"email": "a@b.c"}]});
        let campaign = parse(&data, &json!({}), &dirs(here)).unwrap();
        assert_eq!(campaign.body, "Hello {{name}}");
        assert_eq!(campaign.from.to_string(), DEFAULT_FROM);
        let from_settings =
            parse(&data, &json!({"from": "Shop <shop@x.org>"}), &dirs(here)).unwrap();
        assert_eq!(from_settings.from.to_string(), "Shop <shop@x.org>");
        let mut own = data.clone();
        own["from"] = json!("me@x.org");
        let from_task = parse(&own, &json!({"from": "shop@x.org"}), &dirs(here)).unwrap();
        assert_eq!(from_task.from.to_string(), "me@x.org");
    }

    #[test]
    fn campaign_level_mistakes_are_permanent_errors() {
        let here = Path::new("/nowhere");
        let ok = json!({"subject": "Hi", "body": "x", "recipients": [{"email": "a@b.c"}]});
        let with = |key: &str, value: Value| {
            let mut data = ok.clone();
            data[key] = value;
            parse(&data, &json!({}), &dirs(here)).unwrap_err()
        };
        assert!(with("subject", json!("")).message().contains("subject"));
        assert!(with("template", json!("t")).message().contains("not both"));
        assert!(with("recipients", json!([]))
            .message()
            .contains("recipients"));
        assert!(with("attachments", json!(["/no/such/file.pdf"]))
            .message()
            .contains("file.pdf"));
        assert!(with("from", json!("not a sender"))
            .message()
            .contains("from"));
        let mut no_body = ok.clone();
        no_body.as_object_mut().unwrap().remove("body");
        assert!(parse(&no_body, &json!({}), &dirs(here)).is_err());
    }

    #[test]
    fn named_templates_and_relative_attachments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/welcome.txt"), "Welcome {{name}}").unwrap();
        std::fs::write(dir.path().join("terms.txt"), "terms").unwrap();
        let data = json!({
            "subject": "Hi", "template": "welcome", "attachments": ["terms.txt"],
            "recipients": [{"email": "a@b.c"}]
        });
        let campaign = parse(&data, &json!({}), &dirs(dir.path())).unwrap();
        assert_eq!(campaign.body, "Welcome {{name}}");
        assert_eq!(campaign.attachments[0].filename, "terms.txt");
        let escape =
            json!({"subject": "Hi", "template": "../x", "recipients": [{"email": "a@b.c"}]});
        assert!(parse(&escape, &json!({}), &dirs(dir.path())).is_err());
    }
}
