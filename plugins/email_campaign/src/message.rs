//! Recipients, attachments and the MIME message built for each recipient.

use crate::template::render;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use serde_json::Value;
use stask_plugin_api::TaskError;
use std::collections::HashMap;
use std::path::Path;

/// One recipient: the mailbox to write to and the fields its placeholders may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub mailbox: Mailbox,
    pub fields: HashMap<String, String>,
}

/// Reads one `recipients` entry. The error is a reason to log (this recipient fails, the
/// campaign goes on).
///
/// Every string, number or boolean field becomes a placeholder value; `name` defaults to empty
/// so `{{name}}` never leaks into a sent message just because a list has no names.
pub fn parse_recipient(entry: &Value) -> Result<Recipient, String> {
    let Value::Object(map) = entry else {
        return Err(format!("recipient {entry} is not an object"));
    };
    let email = map
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| format!("recipient {entry} has no email"))?;
    let address: Address = email
        .parse()
        .map_err(|e| format!("invalid address {email:?}: {e}"))?;
    let mut fields: HashMap<String, String> = map
        .iter()
        .filter_map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((key.clone(), text))
        })
        .collect();
    fields.insert("email".to_owned(), email.to_owned());
    let name = fields
        .entry("name".to_owned())
        .or_default()
        .trim()
        .to_owned();
    let display = (!name.is_empty()).then_some(name);
    Ok(Recipient {
        mailbox: Mailbox::new(display, address),
        fields,
    })
}

/// A file attached to every message, read once per task.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    pub filename: String,
    pub content_type: ContentType,
    pub bytes: Vec<u8>,
}

impl FileAttachment {
    /// Reads the file; a missing or unreadable attachment is a permanent error, because sending
    /// the campaign without it would be sending a different campaign.
    pub fn load(path: &Path) -> Result<Self, TaskError> {
        let bytes = std::fs::read(path).map_err(|e| {
            TaskError::permanent(format!("attachment {} cannot be read: {e}", path.display()))
        })?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                TaskError::permanent(format!("attachment {} is not a file", path.display()))
            })?;
        Ok(FileAttachment {
            content_type: content_type_for(&filename),
            filename,
            bytes,
        })
    }
}

/// MIME type by file extension; unknown kinds go as opaque bytes.
pub fn content_type_for(filename: &str) -> ContentType {
    let extension = Path::new(filename)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mime = match extension.as_str() {
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// Builds the message for one recipient: rendered subject and body, plus the attachments.
pub fn build(
    from: &Mailbox,
    recipient: &Recipient,
    subject: &str,
    body: &str,
    attachments: &[FileAttachment],
) -> Result<Message, String> {
    // A recipient field with a line break must not be able to start a new header.
    let subject = render(subject, &recipient.fields).replace(['\r', '\n'], " ");
    let text = render(body, &recipient.fields);
    let builder = Message::builder()
        .from(from.clone())
        .to(recipient.mailbox.clone())
        .subject(subject)
        .message_id(None);
    let message = if attachments.is_empty() {
        builder.header(ContentType::TEXT_PLAIN).body(text)
    } else {
        let parts = attachments.iter().fold(
            MultiPart::mixed().singlepart(SinglePart::plain(text)),
            |parts, file| {
                parts.singlepart(
                    Attachment::new(file.filename.clone())
                        .body(file.bytes.clone(), file.content_type.clone()),
                )
            },
        );
        builder.multipart(parts)
    };
    message.map_err(|e| format!("cannot build message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn formatted(message: &Message) -> String {
        String::from_utf8(message.formatted()).unwrap()
    }

    #[test]
    fn recipient_fields_include_extra_values() {
        let r = parse_recipient(&json!({
            "email": " ada@example.com ", "name": "Ada", "code": "X1", "age": 36, "tags": ["a"]
        }))
        .unwrap();
        assert_eq!(r.mailbox.to_string(), "Ada <ada@example.com>");
        assert_eq!(r.fields["code"], "X1");
        assert_eq!(r.fields["age"], "36");
        assert_eq!(r.fields["email"], "ada@example.com");
        assert!(!r.fields.contains_key("tags"));
    }

    #[test]
    fn recipient_without_name_gets_an_empty_one() {
        let r = parse_recipient(&json!({"email": "bob@example.com"})).unwrap();
        assert_eq!(r.fields["name"], "");
        assert_eq!(r.mailbox.name, None);
    }

    #[test]
    fn bad_recipients_give_reasons() {
        for entry in [
            json!("ada@example.com"),
            json!({"name": "Ada"}),
            json!({"email": ""}),
            json!({"email": "not an address"}),
            json!({"email": "a@b@c"}),
        ] {
            assert!(parse_recipient(&entry).is_err(), "{entry} accepted");
        }
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(
            content_type_for("Report.PDF"),
            ContentType::parse("application/pdf").unwrap()
        );
        assert_eq!(
            content_type_for("blob"),
            ContentType::parse("application/octet-stream").unwrap()
        );
    }

    #[test]
    fn builds_a_plain_message() {
        let from: Mailbox = "Shop <shop@example.com>".parse().unwrap();
        let r = parse_recipient(&json!({"email": "ada@example.com", "name": "Ada"})).unwrap();
        let message = build(
            &from,
            &r,
            "Hello {{name}}\r\nBcc: x@y",
            "Dear {{name}}",
            &[],
        )
        .unwrap();
        let text = formatted(&message);
        assert!(text.contains("To: Ada <ada@example.com>"), "{text}");
        assert!(text.contains("Subject: Hello Ada  Bcc: x@y"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.ends_with("Dear Ada"), "{text}");
    }

    #[test]
    fn builds_a_multipart_message_with_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terms.txt");
        std::fs::write(&path, "the terms").unwrap();
        let file = FileAttachment::load(&path).unwrap();
        let from: Mailbox = "shop@example.com".parse().unwrap();
        let r = parse_recipient(&json!({"email": "ada@example.com"})).unwrap();
        let message = build(&from, &r, "Hi", "Body", &[file]).unwrap();
        let text = formatted(&message);
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("filename=\"terms.txt\""), "{text}");
        assert!(FileAttachment::load(&dir.path().join("missing.pdf")).is_err());
    }
}
