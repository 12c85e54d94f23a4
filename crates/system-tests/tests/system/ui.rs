//! The dashboard (`/ui`) in headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), against the real binaries: it loads, its counts move while tasks run, and a
//! dead task retried from it finishes. With `TASKQ_SCREENSHOTS=DIR` (an absolute path) it saves
//! the main views there; this renews those under docs/ (shown by the README and docs/http-api.md):
//! `TASKQ_SCREENSHOTS=$PWD/docs cargo test -p system-tests --test system ui::`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::stack::{Stack, names, post_task};
use serde_json::{Value, json};
use testkit::{eventually, free_addr};

/// A chromedriver process and one headless Chromium session; both end on drop.
struct Browser {
    driver: Child,
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

impl Browser {
    async fn start() -> Self {
        let addr = free_addr();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/setup installs it)");
        let client = testkit::http_client();
        let base = format!("http://{addr}");
        eventually(Duration::from_secs(20), "chromedriver ready", || async {
            let status = client.get(format!("{base}/status")).send().await.ok()?;
            status.status().is_success().then_some(())
        })
        .await;
        let mut browser = Self {
            driver,
            client,
            session: base.clone(),
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1000"],
            },
        }}});
        let created = browser.call("POST", "/session", capabilities).await;
        browser.session = format!("{base}/session/{}", created["sessionId"].as_str().unwrap());
        browser
    }

    /// One WebDriver command; answers its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.client.get(&url),
            "DELETE" => self.client.delete(&url),
            _ => self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let response = request.send().await.unwrap();
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        answer.get("value").cloned().unwrap_or(answer)
    }

    async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    /// Runs `script` in the page and answers what it returns.
    async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The text of the element `selector`, `None` while it is not there.
    async fn text(&self, selector: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(selector)
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// Clicks the element `selector` as a user would.
    async fn click(&self, selector: &str) {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": selector}),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned();
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Waits until the text of `selector` satisfies `ok`; answers it.
    async fn wait_text(&self, selector: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        eventually(Duration::from_secs(30), what, || async {
            self.text(selector).await.filter(|text| ok(text))
        })
        .await
    }

    /// Saves a PNG of the page as `name` under `TASKQ_SCREENSHOTS`, when set.
    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TASKQ_SCREENSHOTS") else {
            return;
        };
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64_decode(png.as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | u32::from(*d) << (18 - 6 * i));
        out.extend(&bits.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_counts_moving_and_a_dead_task_retried_from_it_finishes() {
    let stack = Stack::start(&[("MOCK_DELAY_MS", "200"), ("MOCK_POLLS_UNTIL_DONE", "2")]);
    // A dead task, made the way a failing API would.
    stack.enqueue("doomed report").await;
    let queue = stack.queue();
    let task = queue.claim(1).await.unwrap().tasks.remove(0);
    queue
        .fail(&task, "the API answered HTTP 404", Duration::ZERO, true)
        .await
        .unwrap();
    let browser = Browser::start().await;
    let ui = format!("http://{}/ui", stack.producer());

    browser.open(&format!("{ui}#list=dead")).await;

    browser
        .wait_text("#count-dead", "one dead task counted", |t| t == "1")
        .await;
    browser
        .wait_text(
            "#tasks tr[data-task='doomed report']",
            "the dead list",
            |t| t.contains("HTTP 404"),
        )
        .await;
    // Work arrives and a consumer runs it: the counts move while the page watches.
    stack.enqueue_all(&names("live", 40)).await;
    browser
        .wait_text("#count-due", "40 due tasks", |t| t == "40")
        .await;
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "300"), ("CONCURRENCY", "8")]);
    browser
        .wait_text("#count-done", "some tasks done, not all", |t| {
            t.parse::<u32>().is_ok_and(|n| (1..40).contains(&n))
        })
        .await;
    browser.screenshot("ui-dashboard.png").await;
    browser
        .wait_text("#count-done", "all 40 done", |t| t == "40")
        .await;

    browser.click("#tasks tr[data-task='doomed report']").await;
    browser
        .wait_text("#detail-state", "the dead task's detail", |t| t == "dead")
        .await;
    browser.click("#retry").await;

    browser
        .wait_text("#detail-state", "the retried task done", |t| t == "done")
        .await;
    browser
        .wait_text("#count-dead", "no dead task left", |t| t == "0")
        .await;
    browser.screenshot("ui-task.png").await;
    browser.resize(390, 844).await;
    browser.open(&format!("{ui}#list=done")).await;
    browser
        .wait_text("#tasks tr", "the done list on a phone-sized page", |t| {
            t.contains("done")
        })
        .await;
    let overflow = browser
        .eval("return document.documentElement.scrollWidth > window.innerWidth;")
        .await;
    assert_eq!(overflow, json!(false), "the page fits a phone's width");
    browser.screenshot("ui-phone.png").await;
    browser.call("DELETE", "", Value::Null).await;
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_queue_picked_among_those_a_producer_serves() {
    let stack = Stack::start(&[]);
    // A second producer in front of the stack's queue and another one.
    let other = testkit::unique_queue("other");
    let addr = free_addr();
    let mut env = crate::stack::redis_env(&stack.redis, &stack.queue_name);
    env.push(("QUEUES", format!("{},{other}", stack.queue_name)));
    env.push(("PRODUCER_ADDR", addr.to_string()));
    let _producer = testkit::Process::serve("producer", addr, &env);
    for name in ["a", "b", "c"] {
        let url = format!("http://{addr}/?task-name={name}&queue={other}");
        let (status, _) = testkit::get_json(&stack.client, url).await;
        assert!(status.is_success());
    }
    let browser = Browser::start().await;

    browser
        .open(&format!("http://{addr}/ui#queue={other}&list=queued"))
        .await;

    browser
        .wait_text("#count-due", "the other queue's 3 tasks", |t| t == "3")
        .await;
    let picker = browser
        .eval("const s = document.querySelector('#queue'); return [s.value, [...s.options].map(o => o.value)];")
        .await;
    assert_eq!(picker, json!([other, [stack.queue_name, other]]));
    browser
        .eval("const s = document.querySelector('#queue'); s.value = s.options[0].value; s.dispatchEvent(new Event('change')); return null;")
        .await;
    browser
        .wait_text("#count-due", "the default queue's empty count", |t| {
            t == "0"
        })
        .await;
    let hash = browser.eval("return location.hash;").await;
    assert!(hash.as_str().unwrap().contains(&stack.queue_name), "{hash}");
    browser.call("DELETE", "", Value::Null).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_event_source_follows_a_task_to_its_end() {
    // The producer takes a callback to a private address; the consumer refuses to send it, so
    // the task's callback ends "failed", which the dashboard shows.
    let stack = Stack::start_with_producer_env(
        testkit::RedisServer::start(),
        &[("MOCK_DELAY_MS", "100"), ("MOCK_POLLS_UNTIL_DONE", "3")],
        &[("CALLBACK_ALLOW_PRIVATE", "1")],
    );
    let body = json!({"name": "streamed", "callback_url": "http://127.0.0.1:9/hook"});
    let (status, view) = post_task(&stack.client, stack.producer(), &body).await;
    assert_eq!(status, 202, "{view}");
    let browser = Browser::start().await;
    let ui = format!("http://{}/ui", stack.producer());
    browser.open(&ui).await;
    // Every event as the page's EventSource hands it over; `gaveUp` once the EventSource gave
    // up for good, which it does only on the producer's 204 to its reconnection.
    browser
        .eval(
            r#"
            window.seen = []; window.gaveUp = false;
            const source = new EventSource("/tasks/streamed/events");
            for (const name of ["queued", "running", "processing", "done", "dead", "cancelled"]) {
              source.addEventListener(name, (e) => {
                const view = JSON.parse(e.data);
                window.seen.push({event: e.type, id: e.lastEventId, state: view.state, polls: view.polls});
              });
            }
            source.onerror = () => { if (source.readyState === EventSource.CLOSED) window.gaveUp = true; };
            return true;
            "#,
        )
        .await;
    eventually(Duration::from_secs(10), "the first event", || async {
        let seen = browser.eval("return window.seen.length;").await;
        (seen.as_u64() > Some(0)).then_some(())
    })
    .await;
    let _consumer = stack.consumer(&[("POLL_INTERVAL_MS", "200")]);
    eventually(
        Duration::from_secs(30),
        "the EventSource closed",
        || async { (browser.eval("return window.gaveUp;").await == json!(true)).then_some(()) },
    )
    .await;

    let seen = browser.eval("return window.seen;").await;
    let seen = seen.as_array().unwrap();
    let events: Vec<&str> = seen.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"queued"), "{seen:?}");
    assert_eq!(events.last(), Some(&"done"), "{seen:?}");
    assert_eq!(
        events.iter().filter(|e| **e == "done").count(),
        1,
        "the reconnection repeated nothing: {seen:?}"
    );
    assert!(
        events.contains(&"processing"),
        "partial data came: {seen:?}"
    );
    for event in seen {
        assert_eq!(event["event"], event["state"], "{event}");
        let id = event["id"].as_str().unwrap();
        assert!(id.ends_with(event["state"].as_str().unwrap()), "{id}");
    }
    let times: Vec<u64> = seen
        .iter()
        .map(|e| {
            e["id"]
                .as_str()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in order: {times:?}"
    );
    let polls: Vec<u64> = seen.iter().map(|e| e["polls"].as_u64().unwrap()).collect();
    assert!(
        polls.windows(2).all(|w| w[0] <= w[1]),
        "in order: {polls:?}"
    );

    browser.open(&format!("{ui}#list=done&task=streamed")).await;
    browser
        .wait_text("#detail-callback", "the callback's state", |t| {
            t.starts_with("failed") && t.contains("not a public address")
        })
        .await;
    browser.call("DELETE", "", Value::Null).await;
}
