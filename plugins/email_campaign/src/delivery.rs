//! Where messages go: `.eml` files in an outbox folder, or an SMTP server.

use lettre::{FileTransport, Message, SmtpTransport, Transport};
use serde_json::Value;
use stask_plugin_api::TaskError;
use std::path::{Path, PathBuf};

/// The delivery chosen by the worker settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One `.eml` file per message in this folder.
    Outbox(PathBuf),
    /// Plain SMTP (no TLS, no authentication): meant for a local relay or a test server.
    Smtp { host: String, port: u16 },
}

impl Target {
    /// Reads `smtp_host`, `smtp_port` and `outbox` from the settings. A non-empty `smtp_host`
    /// selects SMTP; otherwise the outbox is `outbox` (relative to `data_dir`) or
    /// `{data_dir}/outbox`.
    pub fn from_settings(settings: &Value, data_dir: &Path) -> Result<Self, TaskError> {
        let host = setting_str(settings, "smtp_host")?.trim();
        if !host.is_empty() {
            let port = match settings.get("smtp_port") {
                None | Some(Value::Null) => Some(25),
                Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Some(Value::String(s)) => s.trim().parse().ok(),
                Some(_) => None,
            }
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                TaskError::permanent(format!(
                    "setting smtp_port must be a port number (1-65535), got {}",
                    settings["smtp_port"]
                ))
            })?;
            return Ok(Target::Smtp {
                host: host.to_owned(),
                port,
            });
        }
        let outbox = setting_str(settings, "outbox")?.trim();
        let dir = if outbox.is_empty() {
            data_dir.join("outbox")
        } else {
            data_dir.join(outbox)
        };
        if dir.is_relative() {
            return Err(TaskError::permanent(
                "the host gave this worker no data folder; set an absolute outbox path",
            ));
        }
        Ok(Target::Outbox(dir))
    }
}

fn setting_str<'a>(settings: &'a Value, key: &str) -> Result<&'a str, TaskError> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(TaskError::permanent(format!(
            "setting {key} must be a string, got {other}"
        ))),
    }
}

/// A ready transport.
pub enum Delivery {
    Outbox(PathBuf, FileTransport),
    Smtp(String, SmtpTransport),
}

impl Delivery {
    /// Prepares the transport. For SMTP the server is contacted once up front: when it is
    /// unreachable the task fails retryably before anyone got a message, instead of counting
    /// every recipient as failed.
    pub fn open(target: Target) -> Result<Self, TaskError> {
        match target {
            Target::Outbox(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    TaskError::new(format!("cannot create outbox {}: {e}", dir.display()))
                })?;
                let transport = FileTransport::new(&dir);
                Ok(Delivery::Outbox(dir, transport))
            }
            Target::Smtp { host, port } => {
                let server = format!("{host}:{port}");
                let transport = SmtpTransport::builder_dangerous(host).port(port).build();
                match transport.test_connection() {
                    Ok(true) => Ok(Delivery::Smtp(server, transport)),
                    Ok(false) => Err(TaskError::new(format!(
                        "SMTP server {server} did not answer NOOP"
                    ))),
                    Err(e) => Err(TaskError::new(format!(
                        "cannot reach SMTP server {server}: {e}"
                    ))),
                }
            }
        }
    }

    /// Delivers one message; the error is a reason to log.
    pub fn send(&self, message: &Message) -> Result<(), String> {
        match self {
            Delivery::Outbox(dir, transport) => transport
                .send(message)
                .map(drop)
                .map_err(|e| format!("cannot write to outbox {}: {e}", dir.display())),
            Delivery::Smtp(server, transport) => transport
                .send(message)
                .map(drop)
                .map_err(|e| format!("SMTP server {server}: {e}")),
        }
    }

    /// `"outbox"` or `"smtp"`, for the result.
    pub fn kind(&self) -> &'static str {
        match self {
            Delivery::Outbox(..) => "outbox",
            Delivery::Smtp(..) => "smtp",
        }
    }

    /// The outbox folder, when delivering to one.
    pub fn outbox(&self) -> Option<&Path> {
        match self {
            Delivery::Outbox(dir, _) => Some(dir),
            Delivery::Smtp(..) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outbox_is_the_default_and_can_be_moved() {
        let data = Path::new("/data");
        assert_eq!(
            Target::from_settings(&json!({}), data).unwrap(),
            Target::Outbox(PathBuf::from("/data/outbox"))
        );
        assert_eq!(
            Target::from_settings(&json!({"smtp_host": "", "outbox": "sent"}), data).unwrap(),
            Target::Outbox(PathBuf::from("/data/sent"))
        );
        assert_eq!(
            Target::from_settings(&json!({"outbox": "/var/mail/out"}), data).unwrap(),
            Target::Outbox(PathBuf::from("/var/mail/out"))
        );
        assert!(Target::from_settings(&json!({}), Path::new("")).is_err());
    }

    #[test]
    fn smtp_host_selects_smtp_with_a_valid_port() {
        let data = Path::new("/data");
        assert_eq!(
            Target::from_settings(&json!({"smtp_host": "mail.local"}), data).unwrap(),
            Target::Smtp {
                host: "mail.local".into(),
                port: 25
            }
        );
        assert_eq!(
            Target::from_settings(&json!({"smtp_host": "m", "smtp_port": "2525"}), data).unwrap(),
            Target::Smtp {
                host: "m".into(),
                port: 2525
            }
        );
        for port in [json!(0), json!(70000), json!("x"), json!(true)] {
            let settings = json!({"smtp_host": "m", "smtp_port": port});
            assert!(Target::from_settings(&settings, data).is_err(), "{port}");
        }
        assert!(Target::from_settings(&json!({"smtp_host": 1}), data).is_err());
    }

    #[test]
    fn outbox_delivery_writes_an_eml_file() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let delivery = Delivery::open(Target::Outbox(outbox.clone())).unwrap();
        let message = Message::builder()
            .from("a@example.com".parse().unwrap())
            .to("b@example.com".parse().unwrap())
            .subject("s")
            .body(String::from("hello"))
            .unwrap();
        delivery.send(&message).unwrap();
        let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        assert_eq!(path.extension().unwrap(), "eml");
        assert!(std::fs::read_to_string(path).unwrap().contains("hello"));
        assert_eq!(delivery.kind(), "outbox");
    }

    #[test]
    fn unreachable_smtp_server_is_a_retryable_error() {
        // Port 1 on localhost: nothing listens there, the connection is refused at once.
        let target = Target::Smtp {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let error = Delivery::open(target).err().unwrap();
        assert!(error.message().contains("127.0.0.1:1"), "{error}");
    }
}
