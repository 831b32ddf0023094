//! The systemd notify protocol for `stask serve` (a `Type=notify` unit): `READY=1` once the
//! API listens and the runtime runs, `STOPPING=1` when a stop begins, and `WATCHDOG=1` every
//! half of `WATCHDOG_USEC` while the async runtime answers (a wedged runtime stops the pings,
//! and systemd restarts the service). Without `NOTIFY_SOCKET` every call does nothing.
//! Notifications are best effort: a failed send is logged, never fatal.

use sd_notify::NotifyState;
use std::time::Duration;

/// Tells the service manager the daemon is ready, and on which address.
pub(super) fn ready(addr: &std::net::SocketAddr) {
    let status = format!("listening on http://{addr}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager a stop has begun (running tasks get their grace time).
pub(super) fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: running tasks get their grace time"),
    ]);
}

/// Pings the watchdog from the async runtime every half of its interval, when the service
/// manager asked for one; the task ends with the runtime.
pub(super) fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(10));
    tracing::info!("systemd watchdog: a ping every {} ms", every.as_millis());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
    }
}
