//! `email_campaign`: renders one message per recipient from a template and delivers it.
//!
//! Action `send` (data keys: `subject`, `template` or `body`, `recipients`, `attachments`,
//! `from`). Delivery goes to an outbox folder of `.eml` files by default, so a fresh
//! installation can be tried without a mail server; setting `smtp_host` switches to plain SMTP.
//! A bad recipient address fails that recipient only; bad campaign data fails the task at once.

mod campaign;
mod delivery;
mod message;
mod template;

use serde_json::Value;
use stask_plugin_api::{export_worker, Context, Output, TaskError, Worker, WorkerInfo};

#[derive(Default)]
struct EmailCampaign;

impl Worker for EmailCampaign {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new("email_campaign", "Email campaign")
            .scope("marketing")
            .description(
                "Sends a templated message to a list of recipients, into an outbox folder or \
                 through SMTP.",
            )
            .version(env!("CARGO_PKG_VERSION"))
            .action(
                "send",
                "Sends a campaign: subject, template or body, recipients, attachments, from",
            )
            .setting("from", "stask@localhost")
            .setting("smtp_host", "")
            .setting("smtp_port", 25)
            .setting("outbox", "")
    }

    fn run(&self, ctx: &Context<'_>, action: &str, data: Value) -> Result<Output, TaskError> {
        match action {
            "send" => campaign::send(ctx, &data),
            other => Err(TaskError::permanent(format!(
                "unknown action {other}; valid actions: send"
            ))),
        }
    }
}

export_worker!(EmailCampaign);
