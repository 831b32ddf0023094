//! The admin web UI in real browsers: Debian's headless Chromium (chromedriver) and Firefox ESR
//! (geckodriver), each driven over WebDriver against the real daemon; every scenario runs in
//! both (`firefox_*` are the Firefox runs). Login, every tab, running a task from a worker's
//! form and watching it finish, cancelling, a plugin dropped into plugins.d appearing live, and
//! server text never being interpreted as HTML.
//!
//! The browser is required: without `chromedriver` or `/usr/bin/chromium` these tests fail and
//! say how to install them. Waiting is for an observable condition with a deadline (polled every
//! 20 ms), never a fixed sleep. Screenshots of every tab land in `target/ui-screenshots/`.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Map, Value};
use stask_tests::{workspace, Daemon, Home};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Deadline of one UI condition.
const WAIT: Duration = Duration::from_secs(30);
/// Poll interval of UI conditions.
const POLL: Duration = Duration::from_millis(20);
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";
const FIREFOX: &str = "/usr/bin/firefox-esr";
const INSTALL_FIREFOX: &str =
    "apt-get install -y firefox-esr && cargo install geckodriver --locked";

/// Which browser a test drives: Debian's Chromium through chromedriver, or Debian's Firefox
/// ESR through geckodriver (built from crates.io; Debian packages none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    /// Screenshot name prefix: none for Chromium (the README's pictures), `firefox-` else.
    fn prefix(self) -> &'static str {
        match self {
            Kind::Chromium => "",
            Kind::Firefox => "firefox-",
        }
    }
}
const TABS: [&str; 6] = [
    "dashboard",
    "tasks",
    "workers",
    "batches",
    "schedules",
    "performance",
];

/// At most two browsers at a time: the machine has two cores and the progress test needs to
/// see a two-second task half-way.
static BROWSERS: Semaphore = Semaphore::const_new(2);

// ---------------------------------------------------------------------------------------------
// chromedriver and the browser session
// ---------------------------------------------------------------------------------------------

/// A scenario `$scenario(kind)` as two tests: `$chromium` and `$firefox`.
macro_rules! in_both_browsers {
    ($chromium:ident, $firefox:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $chromium() {
            $scenario(Kind::Chromium).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $firefox() {
            $scenario(Kind::Firefox).await;
        }
    };
}

fn chromedriver_path() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromedriver"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    let path = on_path.unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.is_file(),
        "chromedriver was not found (not on PATH, not at /usr/bin/chromedriver); the UI tests \
         need Debian's browser: run `{INSTALL}` as root"
    );
    assert!(
        std::path::Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} was not found; the UI tests need Debian's browser: run `{INSTALL}` as root"
    );
    path
}

/// geckodriver on PATH, or where `cargo install` puts it.
fn geckodriver_path() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"));
    let path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join("geckodriver"))
        .find(|p| p.is_file());
    let path = path.unwrap_or_else(|| {
        panic!("geckodriver was not found (PATH, ~/.cargo/bin); run `{INSTALL_FIREFOX}`")
    });
    assert!(
        std::path::Path::new(FIREFOX).is_file(),
        "{FIREFOX} was not found; run `{INSTALL_FIREFOX}`"
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running chromedriver in its own process group; the group (chromedriver and the Chromium it
/// started) is killed when this is dropped, also when a test panics.
struct Driver {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Driver {
    fn start(kind: Kind) -> Driver {
        use std::os::unix::process::CommandExt;
        let exe = match kind {
            Kind::Chromium => chromedriver_path(),
            Kind::Firefox => geckodriver_path(),
        };
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("stask-ui-")
                .tempdir()
                .expect("tempdir");
            let port = free_port();
            let log = dir.path().join("chromedriver.log");
            let mut command = Command::new(&exe);
            command.arg(format!("--port={port}"));
            let stderr = match kind {
                Kind::Chromium => {
                    command.arg(format!("--log-path={}", log.display()));
                    Stdio::null()
                }
                // geckodriver logs to stderr; it needs a home for Firefox's profile
                // directories.
                Kind::Firefox => {
                    command.env("HOME", dir.path());
                    std::fs::File::create(&log).expect("geckodriver log").into()
                }
            };
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                dir,
            };
            if driver.wait_ready(Duration::from_secs(20)) {
                return driver;
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("{kind:?}'s driver did not answer /status; its log:\n{last_log}");
    }

    /// Waits until `/status` says ready; false if it exited or the deadline passed.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let status = ureq::get(&format!("{}/status", self.url))
                .timeout(Duration::from_secs(2))
                .call();
            if let Ok(r) = status {
                if let Ok(body) = r.into_json::<Value>() {
                    if body["value"]["ready"] == true {
                        return true;
                    }
                }
            }
            std::thread::sleep(POLL);
        }
        false
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created for our own child.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// One browser session against one daemon.
struct Browser {
    kind: Kind,
    c: Client,
    base: String,
    driver: Driver,
    _slot: SemaphorePermit<'static>,
}

fn screenshots() -> PathBuf {
    let dir = workspace().join("target").join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/ui-screenshots");
    dir
}

/// What the page says about one element (`None` when no element matches).
#[derive(Debug, Clone)]
struct Probe {
    text: String,
    visible: bool,
    attrs: Map<String, Value>,
}

impl Probe {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }
}

const PROBE_JS: &str = r#"
const e = document.querySelector(arguments[0]);
if (!e) return null;
const style = getComputedStyle(e);
const visible = !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)
    && style.visibility !== 'hidden' && !e.closest('[hidden]');
const attrs = {};
for (const a of e.attributes) attrs[a.name] = a.value;
if (e.href !== undefined) attrs['.href'] = String(e.href);
if (e.value !== undefined) attrs['.value'] = String(e.value);
return { text: e.textContent, visible, attrs };
"#;

impl Browser {
    async fn open_with(d: &Daemon, kind: Kind) -> Browser {
        let slot = BROWSERS.acquire().await.expect("semaphore");
        let driver = Driver::start(kind);
        let firefox = json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": FIREFOX,
                "args": ["-headless", "-width", "1280", "-height", "900"],
                // Nothing but the daemon: this machine has no outside network.
                "prefs": {
                    "app.update.enabled": false,
                    "browser.shell.checkDefaultBrowser": false,
                    "datareporting.policy.dataSubmissionEnabled": false,
                    "network.captive-portal-service.enabled": false,
                    "network.connectivity-service.enabled": false,
                    "toolkit.telemetry.reportingpolicy.firstRun": false,
                },
            },
            "unhandledPromptBehavior": "accept",
        });
        let chromium = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", driver.profile().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "accept",
        });
        let caps = match kind {
            Kind::Chromium => chromium,
            Kind::Firefox => firefox,
        };
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(driver.dir.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("no WebDriver session with {kind:?}: {e}\ndriver log:\n{log}")
            });
        Browser {
            kind,
            c,
            base: d.base.clone(),
            driver,
            _slot: slot,
        }
    }

    /// Ends the session (closes Chromium); the driver goes when `self` is dropped.
    async fn close(self) {
        let _ = self.c.clone().close().await;
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    async fn probe(&self, css: &str) -> Option<Probe> {
        let v = self.c.execute(PROBE_JS, vec![json!(css)]).await.ok()?;
        if v.is_null() {
            return None;
        }
        Some(Probe {
            text: v["text"].as_str().unwrap_or_default().to_owned(),
            visible: v["visible"] == true,
            attrs: v["attrs"].as_object().cloned().unwrap_or_default(),
        })
    }

    async fn count(&self, css: &str) -> u64 {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            vec![json!(css)],
        )
        .await
        .as_u64()
        .unwrap_or(0)
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.c.screenshot().await.expect("screenshot");
        let path = screenshots().join(format!("{}{name}.png", self.kind.prefix()));
        std::fs::write(&path, png).expect("writing the screenshot");
        path
    }

    /// Polls `probe` every 20 ms until it gives `Some`; after `timeout` panics with `what`, the
    /// page's text and a screenshot.
    async fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if Instant::now() >= deadline {
                self.fail(what).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn fail(&self, what: &str) -> ! {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(60)
            .collect();
        let shot = match self.c.screenshot().await {
            Ok(png) => {
                let path = screenshots().join(format!("{}failed-{name}.png", self.kind.prefix()));
                let _ = std::fs::write(&path, png);
                path.display().to_string()
            }
            Err(e) => format!("(no screenshot: {e})"),
        };
        let text = self
            .c
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let url = self
            .c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let text: String = text.chars().take(4000).collect();
        panic!(
            "UI: timed out waiting for {what}\nurl: {url}\nscreenshot: {shot}\npage text:\n{text}"
        );
    }

    async fn wait_visible(&self, css: &str) -> Probe {
        self.until(&format!("{css} to be visible"), WAIT, async || {
            self.probe(css).await.filter(|p| p.visible)
        })
        .await
    }

    async fn wait_hidden(&self, css: &str) {
        self.until(&format!("{css} to be hidden"), WAIT, async || {
            match self.probe(css).await {
                Some(p) if p.visible => None,
                _ => Some(()),
            }
        })
        .await
    }

    /// Waits until `css`'s text satisfies `pred`; returns the text.
    async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.until(&format!("{css} {what}"), WAIT, async || {
            self.probe(css).await.map(|p| p.text).filter(|t| pred(t))
        })
        .await
    }

    /// Clicks the first element matching `css` once it exists and accepts the click, retrying
    /// while it is still being rendered (not interactable, stale, covered).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let err = match self.c.find(Locator::Css(css)).await {
                Ok(e) => match e.click().await {
                    Ok(()) => {
                        // A confirm() the UI may ask: accept it (no dialog is fine).
                        let _ = self.c.accept_alert().await;
                        return;
                    }
                    Err(err) => err,
                },
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                self.fail(&format!("a click on {css} ({err})")).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of an input or textarea by typing.
    async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .c
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn goto_ui(&self) {
        self.c
            .goto(&format!("{}/", self.base))
            .await
            .expect("opening the daemon's /");
        let url = self.c.current_url().await.expect("url");
        assert!(
            url.path().starts_with("/ui/"),
            "GET / must lead to /ui/, the browser is at {url}"
        );
    }

    /// Opens the UI and logs in with the daemon's token; the dashboard shows.
    async fn login(&self, d: &Daemon) {
        self.login_with(&d.token).await;
    }

    /// Opens the UI and logs in with `token`; the dashboard shows.
    async fn login_with(&self, token: &str) {
        self.goto_ui().await;
        self.wait_visible("form#login").await;
        self.type_into("#token", token).await;
        self.click("#login-submit").await;
        self.wait_visible("#tab-dashboard").await;
        self.wait_hidden("form#login").await;
    }

    /// Clicks a tab; its section shows and the others hide.
    async fn open_tab(&self, tab: &str) {
        self.click(&format!("[data-tab=\"{tab}\"]")).await;
        self.wait_visible(&format!("#tab-{tab}")).await;
        for other in TABS.iter().filter(|t| **t != tab) {
            self.wait_hidden(&format!("#tab-{other}")).await;
        }
    }

    /// Tasks tab, click the task's open button (what the keyboard reaches): its detail shows.
    async fn open_task_from_list(&self, id: i64) {
        self.open_tab("tasks").await;
        let row = format!("#tasks-table tbody tr[data-task-id=\"{id}\"]");
        self.wait_visible(&row).await;
        self.click(&format!("{row} button.open-row")).await;
        self.wait_visible("#task-detail").await;
        self.wait_text("#detail-status", "shows a status", |t| !t.trim().is_empty())
            .await;
    }

    /// No value leaked into the page as a stray word: a text node (outside pre, code and form
    /// fields) that is just `null`, `undefined` or `NaN`, or that says `[object Object]` or
    /// `undefined`.
    async fn assert_no_stray_values(&self, within: &str) {
        let found = self
            .js(
                r#"const root = document.querySelector(arguments[0]);
                   if (!root) return [];
                   const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
                   const bad = [];
                   for (let n = walk.nextNode(); n; n = walk.nextNode()) {
                     if (n.parentElement.closest('pre, code, textarea, script, style')) continue;
                     const t = n.textContent.trim();
                     if (['null', 'undefined', 'NaN'].includes(t) || /\[object Object\]|\bundefined\b|\bNaN\b/.test(t)) {
                       const p = n.parentElement;
                       bad.push(`${p.tagName.toLowerCase()}.${p.className}: ${JSON.stringify(t)}`);
                     }
                   }
                   return bad;"#,
                vec![json!(within)],
            )
            .await;
        assert_eq!(
            found,
            json!([]),
            "{within} shows values that were never turned into text"
        );
    }

    /// The browser's console since the last call (chromedriver's log endpoint), when available.
    fn console(&self, session: &str) -> Option<Vec<Value>> {
        let r = ureq::post(&format!("{}/session/{session}/se/log", self.driver.url))
            .timeout(Duration::from_secs(10))
            .send_json(json!({"type": "browser"}))
            .ok()?;
        let body: Value = r.into_json().ok()?;
        body["value"].as_array().cloned()
    }

    /// Like [`Browser::assert_no_script_errors`], for a test that takes the host away on
    /// purpose: failed connections meanwhile are expected, script errors are not.
    async fn assert_no_errors_but_lost_connections(&self) {
        let session = self
            .c
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        if let Some(entries) = self.console(&session) {
            let bad: Vec<&Value> = entries
                .iter()
                .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
                .collect();
            assert!(bad.is_empty(), "errors in the browser console: {bad:#?}");
        }
        self.assert_no_page_errors().await;
    }

    /// `window.__staskErrors` (uncaught errors the page collected) is empty.
    async fn assert_no_page_errors(&self) {
        let errors = self.js("return window.__staskErrors ?? null", vec![]).await;
        assert!(
            errors.as_array().is_some_and(|e| e.is_empty()),
            "uncaught errors in the page: {errors}"
        );
    }

    /// No script error in the page: the console has no SEVERE entry other than an expected
    /// HTTP answer below 500 (a 401 before login, say), and the page caught no error.
    async fn assert_no_script_errors(&self) {
        let session = self
            .c
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        match self.console(&session) {
            Some(entries) => {
                let bad: Vec<&Value> = entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter(|e| {
                        let msg = e["message"].as_str().unwrap_or_default();
                        let status = msg
                            .split("status of ")
                            .nth(1)
                            .and_then(|s| s.split_whitespace().next())
                            .and_then(|s| s.parse::<u16>().ok());
                        !(e["source"] == "network" && status.is_some_and(|s| s < 500))
                    })
                    .collect();
                assert!(bad.is_empty(), "errors in the browser console: {bad:#?}");
            }
            None => eprintln!(
                "note: {:?} gave no browser log; page errors only",
                self.kind
            ),
        }
        self.assert_no_page_errors().await;
    }
}

fn number(text: &str) -> Option<u64> {
    text.trim().replace([',', ' ', '\u{a0}'], "").parse().ok()
}

fn has_word(text: &str, word: &str) -> bool {
    text.to_lowercase().contains(word)
}

/// Path part of a link (the daemon helpers take paths).
fn path_of<'a>(d: &Daemon, href: &'a str) -> &'a str {
    href.strip_prefix(d.base.as_str()).unwrap_or(href)
}

// ---------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------

in_both_browsers!(
    login_and_each_tab_render,
    firefox_login_and_each_tab_render,
    login_and_each_tab_render_in
);

async fn login_and_each_tab_render_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let done = d.create("demo", "run", json!({"steps": 2, "sleep_ms": 0}));
    d.wait_finished(done);
    let b = Browser::open_with(&d, kind).await;

    // Wrong token: an error, no dashboard.
    b.goto_ui().await;
    b.wait_visible("form#login").await;
    b.screenshot("login").await;
    b.type_into("#token", "stk_not-a-valid-token").await;
    b.click("#login-submit").await;
    let error = b
        .wait_text("#login-error", "to say why the login failed", |t| {
            !t.trim().is_empty()
        })
        .await;
    assert!(b.wait_visible("#login-error").await.visible, "{error}");
    assert!(
        !b.probe("#tab-dashboard").await.is_some_and(|p| p.visible),
        "a wrong token must not show the dashboard"
    );

    // Right token: the dashboard.
    b.type_into("#token", &d.token).await;
    b.click("#login-submit").await;
    b.wait_visible("#tab-dashboard").await;
    b.wait_hidden("form#login").await;
    b.wait_hidden("#login-error").await;
    b.wait_text("#live-status", "to say live", |t| has_word(t, "live"))
        .await;

    for stat in [
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "total",
        "workers",
    ] {
        b.wait_text(&format!("[data-stat=\"{stat}\"]"), "is a number", |t| {
            number(t).is_some()
        })
        .await;
    }
    b.wait_text("[data-stat=\"total\"]", "counts the task", |t| {
        number(t) == Some(1)
    })
    .await;
    b.wait_text("[data-stat=\"completed\"]", "counts the task", |t| {
        number(t) == Some(1)
    })
    .await;
    b.wait_text("[data-stat=\"workers\"]", "counts the demo worker", |t| {
        number(t) == Some(1)
    })
    .await;
    let row = format!("#recent-tasks tr[data-task-id=\"{done}\"]");
    b.wait_visible(&row).await;
    b.wait_text(&format!("{row} span.status"), "says completed", |t| {
        has_word(t, "completed")
    })
    .await;
    let bar = b
        .wait_visible(&format!("{row} .bar[role=progressbar]"))
        .await;
    assert_eq!(bar.attr("aria-valuenow"), Some("100"), "{bar:?}");
    b.wait_visible("#recent-errors").await;
    // Cleaning tasks older than 30 days answers and keeps the fresh task.
    b.type_into("#clean-days", "30").await;
    b.click("#clean-run").await;
    b.wait_text("#clean-result", "reports the clean", |t| {
        !t.trim().is_empty()
    })
    .await;
    assert_eq!(d.task(done)["status"], "completed");
    let mut shots = vec![b.screenshot("dashboard").await];
    b.assert_no_stray_values("#tab-dashboard").await;

    // Tasks
    b.open_tab("tasks").await;
    b.wait_visible(&format!("#tasks-table tbody tr[data-task-id=\"{done}\"]"))
        .await;
    for id in [
        "#f-status",
        "#f-worker",
        "#f-action",
        "#f-priority",
        "#f-from",
        "#f-to",
        "#f-q",
        "#f-apply",
        "#page-prev",
        "#page-next",
        "#page-info",
    ] {
        assert!(b.probe(id).await.is_some(), "the tasks tab lacks {id}");
    }
    shots.push(b.screenshot("tasks").await);
    b.assert_no_stray_values("#tab-tasks").await;

    // Workers
    b.open_tab("workers").await;
    let demo = ".worker[data-identifier=\"demo\"]";
    b.wait_visible(demo).await;
    b.wait_text(&format!("{demo} .state"), "shows the state", |t| {
        has_word(t, "loaded")
    })
    .await;
    b.wait_text(&format!("{demo} .version"), "shows the version", |t| {
        t.contains("0.1.0")
    })
    .await;
    for part in [
        "button.toggle-active",
        "form.run-action[data-action=\"run\"] textarea.run-data",
        "form.run-action[data-action=\"run\"] button.run-submit",
        "textarea.settings",
        "button.save-settings",
    ] {
        assert!(
            b.probe(&format!("{demo} {part}")).await.is_some(),
            "the demo worker's card lacks {part}"
        );
    }
    for id in [
        "#btn-discover",
        "#btn-rescan",
        "#btn-clean-orphaned",
        "#plugin-errors",
    ] {
        assert!(b.probe(id).await.is_some(), "the workers tab lacks {id}");
    }
    shots.push(b.screenshot("workers").await);
    b.assert_no_stray_values("#tab-workers").await;

    // Performance
    b.open_tab("performance").await;
    b.wait_visible("select#perf-hours").await;
    b.wait_text("#perf-summary", "has figures", |t| {
        t.chars().any(|c| c.is_ascii_digit())
    })
    .await;
    b.wait_text("#perf-workers", "names the demo worker", |t| {
        t.contains("demo")
    })
    .await;
    b.wait_text("#cache-stats", "has figures", |t| {
        t.chars().any(|c| c.is_ascii_digit())
    })
    .await;
    for id in ["#perf-alerts", "#cache-clear", "svg#timeline-chart"] {
        assert!(
            b.probe(id).await.is_some(),
            "the performance tab lacks {id}"
        );
    }
    shots.push(b.screenshot("performance").await);
    b.assert_no_stray_values("#tab-performance").await;

    // The dashboard at phone width.
    b.open_tab("dashboard").await;
    b.c.set_window_size(375, 800).await.expect("window size");
    b.wait_visible("[data-stat=\"total\"]").await;
    let overflow = b
        .js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await;
    shots.push(b.screenshot("dashboard-phone").await);
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "at 375 px the page scrolls sideways by {overflow} px"
    );

    b.assert_no_script_errors().await;

    // Logout brings the login form back.
    b.click("#logout").await;
    b.wait_visible("form#login").await;
    b.wait_hidden("#tab-dashboard").await;
    for shot in &shots {
        eprintln!("screenshot: {}", shot.display());
    }
    b.close().await;
}

in_both_browsers!(
    run_a_task_from_the_workers_tab_and_watch_it_finish,
    firefox_run_a_task_from_the_workers_tab_and_watch_it_finish,
    run_a_task_from_the_workers_tab_and_watch_it_finish_in
);

async fn run_a_task_from_the_workers_tab_and_watch_it_finish_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("workers").await;

    let form = ".worker[data-identifier=\"demo\"] form.run-action[data-action=\"run\"]";
    b.wait_visible(&format!("{form} textarea.run-data")).await;
    b.type_into(
        &format!("{form} textarea.run-data"),
        r#"{"steps": 50, "sleep_ms": 100, "log_steps": true, "result_file": "out.txt", "content": "from the browser"}"#,
    )
    .await;
    b.click(&format!("{form} button.run-submit")).await;
    let said = b
        .wait_text(
            &format!("{form} .run-result"),
            "says the task was created",
            |t| t.contains("Task #") && t.contains("created"),
        )
        .await;
    let id: i64 = said
        .split("Task #")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {said:?}"));
    let task = d.task(id);
    assert_eq!(task["identifier"], "demo", "{task}");
    assert_eq!(task["action"], "run", "{task}");

    b.click(&format!(
        "{form} .run-result a.open-task[data-task-id=\"{id}\"]"
    ))
    .await;
    b.wait_visible("#task-detail").await;

    // Live progress: a value strictly between 0 and 100 at some point, never going back, then
    // 100 with the status completed.
    let mut seen: Vec<u64> = Vec::new();
    let mut tailed_live = false;
    b.until(
        &format!("task {id} to complete in the detail"),
        Duration::from_secs(60),
        async || {
            let state = b
                .js(
                    r#"const s = document.querySelector('#detail-status');
                       const p = document.querySelector('#detail-progress');
                       const l = document.querySelector('#detail-log');
                       return [s ? s.textContent : null,
                               p ? p.getAttribute('aria-valuenow') : null,
                               l ? l.textContent : ''];"#,
                    vec![],
                )
                .await;
            let status = state[0].as_str().unwrap_or_default().to_owned();
            let now = state[1].as_str().and_then(number);
            // The log tails the run live (task_log events), not only once it has ended.
            if (has_word(&status, "running") || now.is_some_and(|p| p < 100))
                && !has_word(&status, "completed")
                && state[2].as_str().is_some_and(|l| l.contains("step 2 done"))
            {
                tailed_live = true;
            }
            if let Some(now) = now {
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
            (has_word(&status, "completed") && now == Some(100)).then_some(())
        },
    )
    .await;
    assert!(
        seen.iter().any(|v| (1..100).contains(v)),
        "the detail never showed progress half-way: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {seen:?}"
    );
    assert!(
        tailed_live,
        "the detail's log showed no line while the task ran"
    );
    assert_eq!(d.task(id)["status"], "completed");
    b.wait_text("#detail-log", "shows the worker's log", |t| {
        t.contains("attempt 1 of")
    })
    .await;
    b.wait_text("#detail-message", "has the message", |t| {
        !t.trim().is_empty()
    })
    .await;
    assert!(b.probe("#detail-meta").await.is_some(), "no #detail-meta");
    b.wait_hidden("#btn-cancel").await;
    b.wait_visible("#btn-delete").await;

    // The download link: it works with the browser's session cookie and with the token.
    let link = b.wait_visible("a#btn-download").await;
    let href = link
        .attr(".href")
        .or(link.attr("href"))
        .unwrap_or_else(|| panic!("the download link has no href: {link:?}"))
        .to_owned();
    assert!(
        path_of(&d, &href).starts_with(&format!("/stask/tasks/{id}/download")),
        "download link {href}"
    );
    let in_browser =
        b.c.execute_async(
            r#"const done = arguments[arguments.length - 1];
               fetch(arguments[0], {credentials: 'same-origin'})
                 .then(r => r.text().then(t => done([r.status, t])))
                 .catch(e => done([0, String(e)]));"#,
            vec![json!(href)],
        )
        .await
        .expect("fetch in the page");
    assert_eq!(in_browser, json!([200, "from the browser"]));
    let r = d.get(path_of(&d, &href));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.raw, b"from the browser");
    b.screenshot("task-detail").await;
    b.assert_no_stray_values("#task-detail").await;
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    cancel_a_running_task_from_its_detail,
    firefox_cancel_a_running_task_from_its_detail,
    cancel_a_running_task_from_its_detail_in
);

async fn cancel_a_running_task_from_its_detail_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // Long enough (2 minutes) that it is still running however slowly a loaded machine brings
    // the browser to its detail: the test cancels it long before the end.
    let id = d.create("demo", "run", json!({"steps": 2400, "sleep_ms": 50}));
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_task_from_list(id).await;
    b.wait_text("#detail-status", "says running", |t| has_word(t, "running"))
        .await;
    b.wait_visible("#btn-cancel").await;
    b.click("#btn-cancel").await;
    b.wait_text("#detail-status", "says cancelled", |t| {
        has_word(t, "cancelled")
    })
    .await;
    let task = d.wait_task(id, WAIT, |t| t["status"] == "cancelled");
    b.wait_hidden("#btn-cancel").await;
    b.wait_visible("#btn-retry").await;
    assert!(
        task["progress"].as_i64().unwrap_or(100) < 100,
        "cancelled before the end: {task}"
    );
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    the_detail_shows_the_dependency_chain_as_links,
    firefox_the_detail_shows_the_dependency_chain_as_links,
    the_detail_shows_the_dependency_chain_as_links_in
);

/// A task waiting for another shows it, with its status, as a link under "Depends on"; the
/// link opens the parent, whose "Needed by" names the waiting task.
async fn the_detail_shows_the_dependency_chain_as_links_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let parent = d.create("demo", "noop", json!({"start_at": "2099-01-01T00:00:00Z"}));
    let child = d.create("demo", "noop", json!({"depends_on": [parent]}));
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_task_from_list(child).await;
    b.wait_text("#detail-message", "names the parent", |t| {
        t.contains(&format!("Waiting for task {parent}"))
    })
    .await;
    b.wait_text(
        "#detail-depends-on",
        "links the parent with its status",
        |t| t.contains(&format!("#{parent}")) && has_word(t, "pending"),
    )
    .await;
    b.click("#detail-depends-on a.open-task").await;
    b.wait_text("#detail-title", "shows the parent", |t| {
        t.contains(&format!("#{parent}"))
    })
    .await;
    b.wait_text("#detail-dependants", "links the waiting task", |t| {
        t.contains(&format!("#{child}"))
    })
    .await;
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    pause_and_resume_a_worker_from_its_card,
    firefox_pause_and_resume_a_worker_from_its_card,
    pause_and_resume_a_worker_from_its_card_in
);

/// The card's Pause button pauses the worker (the API says so, the card shows the badge), a
/// task created meanwhile shows "paused" in the tasks table, and Resume lets it run.
async fn pause_and_resume_a_worker_from_its_card_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("workers").await;
    let demo = ".worker[data-identifier=\"demo\"]";
    b.wait_visible(demo).await;
    assert!(b.probe(&format!("{demo} .paused-flag")).await.is_none());
    b.wait_text(
        &format!("{demo} button.toggle-paused"),
        "offers Pause",
        |t| t == "Pause",
    )
    .await;
    b.click(&format!("{demo} button.toggle-paused")).await;
    b.wait_visible(&format!("{demo} .paused-flag")).await;
    b.wait_text(
        &format!("{demo} button.toggle-paused"),
        "offers Resume",
        |t| t == "Resume",
    )
    .await;
    let worker = d.get("/stask/workers/demo").body;
    assert_eq!(worker["worker"]["paused"], true, "{worker}");

    let id = d.create("demo", "noop", json!({}));
    b.open_tab("tasks").await;
    let row = format!("#tasks-table tbody tr[data-task-id=\"{id}\"]");
    b.wait_visible(&format!("{row} .paused-flag")).await;
    b.wait_text(&format!("{row} .c-message"), "says why it waits", |t| {
        t.contains("is paused")
    })
    .await;
    assert_eq!(d.task(id)["status"], "pending");

    b.open_tab("workers").await;
    b.click(&format!("{demo} button.toggle-paused")).await;
    b.wait_hidden(&format!("{demo} .paused-flag")).await;
    assert_eq!(d.wait_finished(id)["status"], "completed");
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    a_session_shows_only_what_its_role_may_do,
    firefox_a_session_shows_only_what_its_role_may_do,
    a_session_shows_only_what_its_role_may_do_in
);

/// Signed in with a `read` token, the UI offers no control that changes anything; with an
/// `operate` token it offers running tasks but not the workers' controls.
async fn a_session_shows_only_what_its_role_may_do_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let token = |name: &str, role: &str| {
        let out = home.cli(&["token", "create", "--name", name, "--role", role]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout.lines().last().unwrap().trim().to_owned()
    };
    let demo = ".worker[data-identifier=\"demo\"]";
    let b = Browser::open_with(&d, kind).await;
    b.login_with(&token("viewer", "read")).await;
    b.wait_text("#session-info", "names the role", |t| t.contains("(read)"))
        .await;
    b.open_tab("workers").await;
    b.wait_visible(demo).await;
    for hidden in [
        format!("{demo} button.toggle-active"),
        format!("{demo} button.toggle-paused"),
        format!("{demo} form.run-action"),
        "#btn-discover".to_owned(),
    ] {
        b.wait_hidden(&hidden).await;
    }
    b.open_tab("schedules").await;
    b.wait_hidden("#schedule-form").await;
    b.click("#logout").await;
    b.wait_visible("form#login").await;

    b.login_with(&token("site", "operate")).await;
    b.open_tab("workers").await;
    b.wait_visible(&format!("{demo} form.run-action")).await;
    b.wait_hidden(&format!("{demo} button.toggle-active")).await;
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    a_dropped_plugin_appears_without_reloading,
    firefox_a_dropped_plugin_appears_without_reloading,
    a_dropped_plugin_appears_without_reloading_in
);

async fn a_dropped_plugin_appears_without_reloading_in(kind: Kind) {
    let home = Home::with_workers(&[]);
    let d = home.serve();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("workers").await;
    b.wait_visible("#workers-list").await;
    assert_eq!(b.count("#workers-list .worker").await, 0);
    // A mark in this page: a reload or navigation would lose it.
    b.js("window.__samePage = 'yes'; return null", vec![]).await;
    let url = b.c.current_url().await.expect("url");

    home.install_worker("demo");
    assert!(
        d.log
            .wait_for(WAIT, |l| l.contains("worker loaded"))
            .is_some(),
        "the daemon did not load the plugin:\n{}",
        d.log.text()
    );
    b.wait_visible("#workers-list .worker[data-identifier=\"demo\"]")
        .await;
    assert_eq!(
        b.js("return window.__samePage || null", vec![]).await,
        "yes",
        "the page was reloaded"
    );
    assert_eq!(b.c.current_url().await.expect("url"), url);
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    html_in_task_data_and_messages_is_shown_as_text,
    firefox_html_in_task_data_and_messages_is_shown_as_text,
    html_in_task_data_and_messages_is_shown_as_text_in
);

async fn html_in_task_data_and_messages_is_shown_as_text_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let id = d.create(
        "demo",
        "run",
        json!({
            "steps": 1,
            "sleep_ms": 0,
            "title": "<img src=x onerror=\"window.__xss=1\">",
            "note": "<script>window.__xss=2</script>",
            "result": "<b>bold</b><script>window.__xss=3</script>",
        }),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.wait_visible(&format!("#recent-tasks tr[data-task-id=\"{id}\"]"))
        .await;
    b.open_task_from_list(id).await;
    let result = b
        .wait_text("#detail-result", "shows the result as text", |t| {
            t.contains("<b>bold</b>")
        })
        .await;
    assert!(
        result.contains("<script>window.__xss=3</script>"),
        "{result:?}"
    );
    let detail = b
        .wait_text("#task-detail", "shows the task's data as text", |t| {
            t.contains("<img src=x onerror=")
        })
        .await;
    assert!(
        detail.contains("<script>window.__xss=2</script>"),
        "{detail:?}"
    );
    assert_eq!(
        b.js("return window.__xss === undefined", vec![]).await,
        true,
        "server text was run as script"
    );
    assert_eq!(
        b.count("#task-detail img, #task-detail script").await,
        0,
        "server text became elements in the detail"
    );
    let made = b
        .js(
            r#"return {
                 img: document.querySelectorAll('img[src="x"]').length,
                 bold: [...document.querySelectorAll('b')].filter(e => e.textContent === 'bold').length,
                 script: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
               };"#,
            vec![],
        )
        .await;
    assert_eq!(
        made,
        json!({"img": 0, "bold": 0, "script": 0}),
        "server text became elements"
    );
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    the_detail_links_a_task_and_its_follow_ups,
    firefox_the_detail_links_a_task_and_its_follow_ups,
    the_detail_links_a_task_and_its_follow_ups_in
);

async fn the_detail_links_a_task_and_its_follow_ups_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let parent = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0,
               "follow_up": {"identifier": "demo", "action": "noop"}}),
    );
    let done = d.wait_finished(parent);
    assert_eq!(done["status"], "completed", "{done}");
    let child: i64 = done["result"]
        .as_str()
        .and_then(|r| r.strip_prefix("follow-up "))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("the parent names its follow-up: {done}"));
    assert_eq!(d.wait_finished(child)["status"], "completed");
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_task_from_list(parent).await;
    b.wait_text("#detail-children", "lists the follow-up", |t| {
        t.trim() == format!("#{child}")
    })
    .await;
    assert_eq!(b.count("#detail-parent a").await, 0, "no parent");
    b.click(&format!(
        "#detail-children a.open-task[data-task-id=\"{child}\"]"
    ))
    .await;
    b.wait_text("#detail-title", "shows the follow-up", |t| {
        t.contains(&format!("#{child}"))
    })
    .await;
    b.wait_text("#detail-parent", "links the parent", |t| {
        t.trim() == format!("#{parent}")
    })
    .await;
    b.click(&format!(
        "#detail-parent a.open-task[data-task-id=\"{parent}\"]"
    ))
    .await;
    b.wait_text("#detail-title", "shows the parent again", |t| {
        t.contains(&format!("#{parent}"))
    })
    .await;
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    live_updates_resume_after_the_host_restarts,
    firefox_live_updates_resume_after_the_host_restarts,
    live_updates_resume_after_the_host_restarts_in
);

async fn live_updates_resume_after_the_host_restarts_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let token = home.token();
    let d = home.serve_with_token(token.clone());
    let bind = d.base.trim_start_matches("http://").to_owned();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.wait_text("#live-status", "to say live", |t| has_word(t, "live"))
        .await;
    b.js("window.__samePage = 'yes'; return null", vec![]).await;

    d.kill9();
    b.wait_text("#live-status", "to notice the lost stream", |t| {
        has_word(t, "reconnecting")
    })
    .await;
    // The same host again, at the same address (the session lives in the database).
    let d = home.serve_on(token, &bind);
    b.wait_text("#live-status", "to say live again", |t| has_word(t, "live"))
        .await;
    // The new stream delivers: a task created now shows up without a reload.
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 10}));
    b.wait_visible(&format!("#recent-tasks tr[data-task-id=\"{id}\"]"))
        .await;
    assert_eq!(
        b.js("return window.__samePage || null", vec![]).await,
        "yes",
        "the page was reloaded"
    );
    b.assert_no_errors_but_lost_connections().await;
    b.close().await;
}

in_both_browsers!(
    the_schedules_tab_lists_creates_disables_and_deletes,
    firefox_the_schedules_tab_lists_creates_disables_and_deletes,
    the_schedules_tab_lists_creates_disables_and_deletes_in
);

/// The Schedules tab lists a schedule made over the API, creates one from its form (which then
/// fires: its last run appears), shows a refusal's reason, disables and deletes.
async fn the_schedules_tab_lists_creates_disables_and_deletes_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let r = d.post(
        "/stask/schedules",
        &json!({"name": "nightly", "identifier": "demo", "action": "noop", "cron": "@daily",
                "timezone": "Europe/Berlin"}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let nightly = r.body["schedule"]["id"].as_i64().unwrap();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("schedules").await;
    let row = |id: i64| format!("#schedules-table tr[data-schedule-id=\"{id}\"]");
    b.wait_text(&row(nightly), "lists the API's schedule", |t| {
        t.contains("nightly") && t.contains("@daily") && t.contains("demo / noop")
    })
    .await;

    // A refusal shows the server's reason.
    b.type_into("#s-name", "bad").await;
    b.type_into("#s-worker", "demo").await;
    b.type_into("#s-action", "noop").await;
    b.type_into("#s-cron", "* *").await;
    b.click("#s-create").await;
    b.wait_text("#schedules-result", "says why", |t| {
        t.contains("bad cron expression")
    })
    .await;

    b.type_into("#s-name", "tick").await;
    b.type_into("#s-cron", "* * * * * *").await;
    b.type_into("#s-data", r#"{"k": 1}"#).await;
    b.click("#s-create").await;
    b.wait_text("#schedules-result", "says it was created", |t| {
        t.contains("Schedule created: tick")
    })
    .await;
    let list = d.get("/stask/schedules").body["schedules"].clone();
    let tick = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tick")
        .unwrap_or_else(|| panic!("the form stored no schedule: {list}"))
        .clone();
    assert_eq!(tick["data"], json!({"k": 1}));
    assert_eq!(tick["source"], "api");
    assert_eq!(tick["timezone"], "UTC");
    let tick = tick["id"].as_i64().unwrap();
    // It fires every second: the row's last run fills in (the tab follows task events).
    b.until(
        "the new schedule's last run to show",
        Duration::from_secs(30),
        async || {
            let cells = b
                .js(
                    "const r = document.querySelector(arguments[0]);
                     return r ? r.cells[6].textContent : null;",
                    vec![json!(row(tick))],
                )
                .await;
            cells.as_str().filter(|t| *t != "—").map(str::to_owned)
        },
    )
    .await;

    b.click(&format!("{} .schedule-toggle", row(tick))).await;
    b.wait_text(
        &format!("{} .schedule-enabled", row(tick)),
        "says no",
        |t| t == "no",
    )
    .await;
    assert_eq!(
        d.get(&format!("/stask/schedules/{tick}")).body["schedule"]["enabled"],
        false
    );
    b.click(&format!("{} .schedule-delete", row(nightly))).await;
    b.wait_hidden(&row(nightly)).await;
    assert_eq!(d.get(&format!("/stask/schedules/{nightly}")).status, 404);
    b.screenshot("schedules").await;
    b.assert_no_stray_values("#tab-schedules").await;
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    filters_change_the_task_list_and_a_failed_task_is_retried,
    firefox_filters_change_the_task_list_and_a_failed_task_is_retried,
    filters_change_the_task_list_and_a_failed_task_is_retried_in
);

/// The tasks tab's filters change what the list shows (status, free text, reset), and the
/// detail's Retry button runs a failed task again.
async fn filters_change_the_task_list_and_a_failed_task_is_retried_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let done = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(done)["status"], "completed");
    let failed = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 1, "fail_permanent": true, "max_attempts": 1,
               "label": "needle-in-the-data"}),
    );
    assert_eq!(d.wait_finished(failed)["status"], "failed");
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("tasks").await;
    let row = |id: i64| format!("#tasks-table tbody tr[data-task-id=\"{id}\"]");
    b.wait_visible(&row(done)).await;
    b.wait_visible(&row(failed)).await;

    // Status: only the failed one is left.
    b.c.find(Locator::Css("#f-status"))
        .await
        .expect("#f-status")
        .select_by_value("failed")
        .await
        .expect("choosing a status");
    b.wait_hidden(&row(done)).await;
    b.wait_visible(&row(failed)).await;
    // Reset, then free text matching the task data.
    b.click("#f-reset").await;
    b.wait_visible(&row(done)).await;
    b.type_into("#f-q", "needle-in-the-data").await;
    b.click("#f-apply").await;
    b.wait_hidden(&row(done)).await;
    b.wait_visible(&row(failed)).await;
    b.click("#f-reset").await;
    b.wait_visible(&row(done)).await;

    // Retry from the detail: the task runs again (a second first attempt in its log).
    b.open_task_from_list(failed).await;
    b.wait_text("#detail-status", "says failed", |t| has_word(t, "failed"))
        .await;
    b.click("#btn-retry").await;
    let runs = |d: &Daemon| {
        let detail = d.get(&format!("/stask/tasks/{failed}")).body;
        detail["log"]
            .as_array()
            .map(|l| l.iter().filter(|l| l["line"] == "attempt 1 of 1").count())
            .unwrap_or(0)
    };
    stask_tests::wait_until("the retried run", WAIT, || runs(&d) == 2);
    assert_eq!(d.wait_finished(failed)["status"], "failed");
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    a_workers_card_deactivates_activates_and_saves_its_settings,
    firefox_a_workers_card_deactivates_activates_and_saves_its_settings,
    a_workers_card_deactivates_activates_and_saves_its_settings_in
);

/// A worker card's Deactivate/Activate button changes the worker, and its settings form stores
/// a valid value and shows the server's reason for a refused one.
async fn a_workers_card_deactivates_activates_and_saves_its_settings_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("workers").await;
    let demo = ".worker[data-identifier=\"demo\"]";
    let toggle = format!("{demo} button.toggle-active");
    b.wait_text(&toggle, "offers Deactivate", |t| t == "Deactivate")
        .await;
    b.click(&toggle).await;
    b.wait_text(&toggle, "offers Activate", |t| t == "Activate")
        .await;
    assert_eq!(d.get("/stask/workers/demo").body["worker"]["active"], false);
    b.click(&toggle).await;
    b.wait_text(&toggle, "offers Deactivate", |t| t == "Deactivate")
        .await;
    assert_eq!(d.get("/stask/workers/demo").body["worker"]["active"], true);

    let settings = format!("{demo} textarea.settings");
    let result = format!("{demo} .settings-result");
    b.type_into(&settings, r#"{"timeout": 7}"#).await;
    b.click(&format!("{demo} button.save-settings")).await;
    stask_tests::wait_until("the settings stored", WAIT, || {
        d.get("/stask/workers/demo/settings").body["settings"]["timeout"] == 7
    });
    // A refused value: the form shows the 422's message, and nothing changes.
    let bad = r#"{"timeout": 1.5}"#;
    let refused = d.request("PUT", "/stask/workers/demo/settings", Some(bad));
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let message = refused.body["message"].as_str().unwrap().to_owned();
    b.type_into(&settings, bad).await;
    b.click(&format!("{demo} button.save-settings")).await;
    b.wait_text(&result, "shows the server's reason", |t| {
        t.contains(&message)
    })
    .await;
    assert_eq!(
        d.get("/stask/workers/demo/settings").body["settings"]["timeout"],
        7
    );
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    an_import_uploads_its_file_from_the_workers_form,
    firefox_an_import_uploads_its_file_from_the_workers_form,
    an_import_uploads_its_file_from_the_workers_form_in
);

/// The product worker's import form has a file input: the file is uploaded first, the task is
/// created with the upload's path as its `file`, and the import completes with its row count.
async fn an_import_uploads_its_file_from_the_workers_form_in(kind: Kind) {
    let home = Home::with_workers(&["product", "demo"]);
    let d = home.serve();
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = csv_dir.path().join("three-products.csv");
    std::fs::write(
        &csv,
        "sku,name,price,stock,category_id,active\n\
         U-1,Upload one,1.5,10,1,yes\nU-2,Upload two,2.5,20,1,yes\nU-3,Upload three,3,30,2,no\n",
    )
    .unwrap();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("workers").await;
    let form = ".worker[data-identifier=\"product\"] form.run-action[data-action=\"import\"]";
    b.wait_visible(&format!("{form} input.run-file")).await;
    // Only actions that read a file offer one.
    assert!(b
        .probe(".worker[data-identifier=\"demo\"] input.run-file")
        .await
        .is_none());
    b.c.find(Locator::Css(&format!("{form} input.run-file")))
        .await
        .expect("the file input")
        .send_keys(&csv.to_string_lossy())
        .await
        .expect("choosing the file");
    b.click(&format!("{form} button.run-submit")).await;
    let said = b
        .wait_text(&format!("{form} .run-result"), "names the task", |t| {
            t.contains("created")
        })
        .await;
    let id: i64 = said
        .split('#')
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no task id in {said:?}"));
    let task = d.wait_finished(id);
    assert_eq!(task["status"], "completed", "{task}");
    let file = task["meta"]["file"]
        .as_str()
        .expect("the upload's path as file");
    assert!(file.ends_with(".csv"), "{file}");
    assert!(home.storage().join(file).is_file(), "{file} is stored");
    let result: Value = serde_json::from_str(task["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["created"], 3, "{result}");
    assert_eq!(task["processed"], 3, "{task}");
    b.assert_no_script_errors().await;
    b.close().await;
}

in_both_browsers!(
    the_audit_tab_lists_and_filters_changes_for_admins_only,
    firefox_the_audit_tab_lists_and_filters_changes_for_admins_only,
    the_audit_tab_lists_and_filters_changes_for_admins_only_in
);

async fn the_audit_tab_lists_and_filters_changes_for_admins_only_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let created = d.create("demo", "run", json!({"steps": 1}));
    let refused = d.request_as(None, "POST", "/stask/login", Some(r#"{"token":"nope"}"#));
    assert_eq!(refused.status, 401);
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_tab("audit").await;
    // The create, the failed login and this session's own login (newest first).
    b.wait_text(
        "#audit-table tbody",
        "lists the create and the failed login",
        |t| {
            t.contains("/stask/workers/{identifier}/tasks/{action}")
                && t.contains(&format!("created {created}"))
                && t.contains("anonymous")
                && t.contains("401")
        },
    )
    .await;
    b.screenshot("audit").await;
    b.js(
        "document.querySelector('#a-status').value = '4xx';",
        Vec::new(),
    )
    .await;
    b.click("#a-apply").await;
    b.wait_text("#audit-count", "counts only the refusal", |t| {
        t.starts_with("1 of 1 ")
    })
    .await;
    b.wait_text("#audit-table tbody", "shows only the refusal", |t| {
        t.contains("anonymous") && !t.contains("tasks/{action}")
    })
    .await;
    b.assert_no_script_errors().await;
    b.click("#logout").await;
    b.wait_visible("form#login").await;

    // A read token's session has no Audit tab.
    let out = home.cli(&["token", "create", "--name", "viewer", "--role", "read"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    b.login_with(out.stdout.lines().last().unwrap().trim())
        .await;
    b.wait_text("#session-info", "names the role", |t| t.contains("(read)"))
        .await;
    b.wait_hidden("#tabbtn-audit").await;
    b.close().await;
}

in_both_browsers!(
    a_batch_is_reached_from_its_task_shows_its_counts_and_is_cancelled,
    firefox_a_batch_is_reached_from_its_task_shows_its_counts_and_is_cancelled,
    a_batch_is_reached_from_its_task_shows_its_counts_and_is_cancelled_in
);

/// A batch task's detail links its batch; the batch view shows its counts and progress bar,
/// the batches list lists it, and its Cancel button cancels the unfinished tasks (the bar
/// then shows 100 %: every task finished).
async fn a_batch_is_reached_from_its_task_shows_its_counts_and_is_cancelled_in(kind: Kind) {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let later = "2099-01-01T00:00:00Z";
    let r = d.post(
        "/stask/batches",
        &json!({
            "name": "ui batch",
            "tasks": (0..3).map(|_| json!({"identifier": "demo", "action": "noop", "start_at": later}))
                .collect::<Vec<_>>(),
            "on_complete": {"identifier": "demo", "action": "noop"},
        }),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    let first = r.body["task_ids"][0].as_i64().unwrap();
    let b = Browser::open_with(&d, kind).await;
    b.login(&d).await;
    b.open_task_from_list(first).await;
    b.wait_text("#detail-batch", "links the batch", |t| {
        t.contains(&format!("Batch #{id}"))
    })
    .await;
    b.click("#detail-batch a.open-batch").await;
    b.wait_visible("#tab-batches").await;
    b.wait_visible("#batch-detail").await;
    b.wait_text("#batch-title", "shows the batch", |t| {
        t.contains(&format!("#{id}"))
    })
    .await;
    b.wait_text("#batch-name", "shows its name", |t| t.contains("ui batch"))
        .await;
    b.wait_text(
        "#batch-counts [data-status=\"pending\"] .count",
        "counts 3 pending",
        |t| number(t) == Some(3),
    )
    .await;
    b.wait_visible(&format!("#batches-table tbody tr[data-batch-id=\"{id}\"]"))
        .await;
    b.screenshot("batch").await;
    b.click("#batch-cancel").await;
    b.wait_text(
        "#batch-counts [data-status=\"cancelled\"] .count",
        "counts 3 cancelled",
        |t| number(t) == Some(3),
    )
    .await;
    b.wait_text("#batch-result", "says what was cancelled", |t| {
        t.contains("Cancelled 3")
    })
    .await;
    let bar = d.get(&format!("/stask/batches/{id}")).body;
    assert_eq!(bar["batch"]["done"], true, "{bar}");
    b.wait_text("#batch-bar-text", "a full bar", |t| t.contains("100"))
        .await;
    b.assert_no_script_errors().await;
    b.close().await;
}
